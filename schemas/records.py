"""The published records: one pydantic model per Kafka topic's value.

Field names are the public contract (DESIGN.md, "Records"); within a schema version
(`.v1`) changes are additive, optional fields only. Timestamps are timezone-aware UTC
datetimes, written to JSON as fixed-width ISO-8601 strings ending in `Z`
(`2026-11-26T09:15:00.123000Z`); naive inputs are taken as UTC. Expiries are dates,
written `YYYY-MM-DD`.

The models validate what a consumer reads (`schemas.codec.decode`) and what slower
components publish. The feed's hot path builds plain dicts instead and relies on tests
validating its output against the exported JSON Schemas.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import math
import operator
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field,
                      PlainSerializer, Strict, TypeAdapter, WithJsonSchema, model_validator)

UTC = dt.timezone.utc
ISO_Z_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
PRODUCT_PATTERN = r"^[A-Z0-9][A-Z0-9._&-]{0,31}$"  # no '|' or ':' (used in keys and ids)
INTERVAL_SECONDS: dict[str, int] = {"1m": 60, "5m": 300, "15m": 900}
OPTION_TYPES = ("CALL", "PUT")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


# -- helpers shared with the fast paths ---------------------------------------------------
def as_utc(value: dt.datetime) -> dt.datetime:
    """The same instant with tzinfo=UTC; a naive datetime is taken to be UTC already."""
    if value.tzinfo is UTC:
        return value
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def iso_z(value: dt.datetime) -> str:
    """`2026-11-26T09:15:00.000000Z`: always microseconds, so the strings sort as times."""
    return as_utc(value).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def format_strike(strike: float) -> str:
    """A strike as written in an option symbol: 24000.0 → "24000", 232.5 → "232.5"."""
    value = float(strike)  # numpy scalars repr as "np.float64(...)"
    if not 0 < value < math.inf:
        raise ValueError(f"strike must be positive and finite, got {strike!r}")
    return str(int(value)) if value.is_integer() else repr(value)


def option_symbol(product: str, expiry: dt.date | str, option_type: str, strike: float) -> str:
    """`{product}{YYYYMMDD}{C|P}{strike}`, e.g. option_symbol("NIFTY", date(2026,11,26), "CALL", 24000)
    → "NIFTY20261126C24000"."""
    if option_type not in OPTION_TYPES:
        raise ValueError(f"option_type must be CALL or PUT, got {option_type!r}")
    day = expiry if isinstance(expiry, dt.date) else dt.date.fromisoformat(expiry)
    ymd = day.isoformat().replace("-", "")  # strftime is ~10x slower; this runs per quote
    return f"{product}{ymd}{option_type[0]}{format_strike(strike)}"


def chain_key(product: str, expiry: dt.date | str) -> str:
    """Kafka key of a chain and its analytics: `{product}|{YYYY-MM-DD}`."""
    return f"{product}|{expiry.isoformat() if isinstance(expiry, dt.date) else expiry}"


def ohlc_event_id(instrument: str, interval: str, start_time: dt.datetime) -> str:
    """`NIFTY:1m:2026-11-26T09:15:00Z`: one id per window, shared by its updates and final bar."""
    return f"{instrument}:{interval}:{as_utc(start_time):%Y-%m-%dT%H:%M:%SZ}"


def dlq_event_id(service: str, topic: str, partition: int, offset: int) -> str:
    # Per service: two consumer groups rejecting the same message are two DLQ records.
    return f"{service}:{topic}:{partition}:{offset}"


def _digest(*parts: object) -> str:
    return hashlib.sha1("\x1f".join(map(str, parts)).encode()).hexdigest()[:20]


# -- field types ----------------------------------------------------------------------------
def _int_like(value: Any) -> Any:
    # Accept numpy integers and integral floats (JSON Schema's "integer" does), never
    # booleans or numeric strings.
    if isinstance(value, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, (str, bytes)):
        raise ValueError("expected an integer, got a string")
    try:
        return operator.index(value)
    except TypeError:
        return value  # let pydantic report the type error


def _nan_to_none(value: Any) -> Any:
    # A NaN from numpy means "unknown": store null, never a made-up number.
    return None if isinstance(value, float) and value != value else value


Timestamp = Annotated[
    dt.datetime, AfterValidator(as_utc),
    PlainSerializer(iso_z, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time", "pattern": ISO_Z_PATTERN,
                    "description": "ISO-8601 UTC, ending in Z"}),
]
Expiry = Annotated[
    dt.date, PlainSerializer(dt.date.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date", "pattern": DATE_PATTERN}),
]
Number = Annotated[float, Strict()]  # int or float, not "1.5"; NaN/inf rejected (config)
Price = Annotated[float, Strict(), Field(ge=0)]
Positive = Annotated[float, Strict(), Field(gt=0)]
Count = Annotated[int, Strict(), Field(ge=0), BeforeValidator(_int_like)]
MaybeNumber = Annotated[Number | None, BeforeValidator(_nan_to_none)]
MaybePrice = Annotated[Price | None, BeforeValidator(_nan_to_none)]
MaybePositive = Annotated[Positive | None, BeforeValidator(_nan_to_none)]
Text = Annotated[str, Strict(), Field(min_length=1, max_length=256)]
EventId = Annotated[str, Strict(), Field(min_length=1, max_length=256)]
Product = Annotated[str, Strict(), Field(pattern=PRODUCT_PATTERN)]
OptionSymbol = Annotated[str, Strict(), Field(pattern=r"^[A-Z0-9][A-Z0-9._&-]*\d{8}[CP]\d+(\.\d+)?$",
                                              max_length=64)]
OptionType = Literal["CALL", "PUT"]
Interval = Literal["1m", "5m", "15m"]

_TIMESTAMP = TypeAdapter(Timestamp)


def _increasing(values: list[float], what: str) -> None:
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(f"{what} must be strictly increasing")


# -- the records ------------------------------------------------------------------------------
class Record(BaseModel):
    """Base of every published record: its schema id and its Kafka key."""

    # extra="ignore": a consumer built on v1 keeps reading records that gained fields.
    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False,
                              validate_by_name=True, validate_by_alias=True,
                              serialize_by_alias=True)
    SCHEMA: ClassVar[str]

    def key(self) -> str:
        """The Kafka message key."""
        raise NotImplementedError

    @classmethod
    def default_event_id(cls, data: dict[str, Any]) -> str | None:
        """The deterministic event_id derived from raw fields, for records that have one."""
        return None

    @model_validator(mode="before")
    @classmethod
    def _fill_event_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("event_id") is None:
            try:
                event_id = cls.default_event_id(data)
            except (KeyError, TypeError, ValueError):  # the field errors say what is wrong
                event_id = None
            if event_id is not None:
                data = {**data, "event_id": event_id}
        return data


class UnderlyingTick(Record):
    """A price of an underlying (topic market.underlying, key: product). event_id is
    `{product}:{tick_id}` unless the producer sets another deterministic id."""

    SCHEMA: ClassVar[str] = "underlying_tick.v1"
    product: Product
    price: Positive
    timestamp: Timestamp
    tick_id: Count = Field(description="per-product sequence number of the feed")
    event_id: EventId

    @classmethod
    def default_event_id(cls, data: dict[str, Any]) -> str | None:
        return f"{data['product']}:{_int_like(data['tick_id'])}"

    def key(self) -> str:
        return self.product


class OptionQuote(Record):
    """One option's quote and Greeks (topic market.option_quotes, key: symbol).
    symbol is `{product}{YYYYMMDD}{C|P}{strike}`; iv is annualised (0.15 = 15%) and null
    when it cannot be recovered; vega is per vol point, theta per calendar day, rho per 1%
    rate move; volume is cumulative for the trading day."""

    SCHEMA: ClassVar[str] = "option_quote.v1"
    symbol: OptionSymbol
    product: Product
    strike: Positive
    expiry: Expiry
    option_type: OptionType
    bid: Price
    ask: Price
    last: Price
    volume: Count
    open_interest: Count
    iv: MaybePrice
    delta: Annotated[float, Strict(), Field(ge=-1, le=1)]
    gamma: Price
    vega: Price
    theta: Number
    rho: Number
    timestamp: Timestamp
    event_id: EventId

    @model_validator(mode="after")
    def _consistent(self) -> OptionQuote:
        if self.bid > self.ask:
            raise ValueError(f"bid {self.bid} is above ask {self.ask}")
        if (self.delta < 0) if self.option_type == "CALL" else (self.delta > 0):
            raise ValueError(f"{self.option_type} cannot have delta {self.delta}")
        expected = option_symbol(self.product, self.expiry, self.option_type, self.strike)
        if self.symbol != expected:
            raise ValueError(f"symbol {self.symbol!r} does not match its fields ({expected!r})")
        return self

    def key(self) -> str:
        return self.symbol


class OptionChain(Record):
    """A chain snapshot for one product and expiry (topic market.option_chains, key:
    `{product}|{expiry}`). strikes are strictly increasing; calls and puts hold at most
    one quote per listed strike."""

    SCHEMA: ClassVar[str] = "option_chain.v1"
    product: Product
    expiry: Expiry
    spot_price: Positive
    strikes: Annotated[list[Positive], Field(min_length=1)]
    calls: list[OptionQuote]
    puts: list[OptionQuote]
    timestamp: Timestamp
    event_id: EventId

    @model_validator(mode="after")
    def _consistent(self) -> OptionChain:
        _increasing(self.strikes, "strikes")
        listed = set(self.strikes)
        for side, option_type in ((self.calls, "CALL"), (self.puts, "PUT")):
            seen: set[float] = set()
            for q in side:
                if q.option_type != option_type or q.product != self.product or q.expiry != self.expiry:
                    raise ValueError(f"{q.symbol} does not belong in the {option_type} side of "
                                     f"{self.product} {self.expiry}")
                if q.strike not in listed or q.strike in seen:
                    raise ValueError(f"{q.symbol}: strike not listed or quoted twice")
                seen.add(q.strike)
        return self

    def key(self) -> str:
        return chain_key(self.product, self.expiry)


class ChainAnalytics(Record):
    """Analytics of one chain snapshot (topic analytics.chain, key: `{product}|{expiry}`).
    pcr_* = put / call (null when the call side is zero); *_buildup_otm = open interest of
    out-of-the-money calls (strike > spot) / puts (strike < spot); iv_skew = OTM put IV minus
    OTM call IV at equal distance from the ATM strike (null when unknown)."""

    SCHEMA: ClassVar[str] = "chain_analytics.v1"
    product: Product
    expiry: Expiry
    spot_price: Positive
    pcr_oi: MaybePrice
    pcr_volume: MaybePrice
    atm_strike: Positive
    atm_iv: MaybePrice
    atm_straddle_price: MaybePrice
    max_pain_strike: Positive
    total_call_oi: Count
    total_put_oi: Count
    call_buildup_otm: Count
    put_buildup_otm: Count
    iv_skew: MaybeNumber
    timestamp: Timestamp
    event_id: EventId

    @model_validator(mode="after")
    def _consistent(self) -> ChainAnalytics:
        if self.total_call_oi == 0 and self.pcr_oi is not None:
            raise ValueError("pcr_oi must be null when total_call_oi is 0")
        if self.call_buildup_otm > self.total_call_oi or self.put_buildup_otm > self.total_put_oi:
            raise ValueError("OTM open interest exceeds the total open interest")
        return self

    def key(self) -> str:
        return chain_key(self.product, self.expiry)


class OhlcBar(Record):
    """An event-time bar (topic analytics.ohlc, key: symbol for option bars, else product).
    The window is [start_time, end_time), aligned to the interval since the Unix epoch.
    Updates of an open window and its `final` version share event_id
    `{symbol or product}:{interval}:{start_time}`, so stores keep the latest state."""

    SCHEMA: ClassVar[str] = "ohlc_bar.v1"
    product: Product
    symbol: OptionSymbol | None = Field(default=None, description="option symbol for option bars")
    interval: Interval
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Count
    num_ticks: Annotated[int, Strict(), Field(ge=1), BeforeValidator(_int_like)]
    start_time: Timestamp
    end_time: Timestamp
    final: Annotated[bool, Strict()]
    timestamp: Timestamp
    event_id: EventId

    @classmethod
    def default_event_id(cls, data: dict[str, Any]) -> str | None:
        return ohlc_event_id(data.get("symbol") or data["product"], data["interval"],
                             _TIMESTAMP.validate_python(data["start_time"]))

    @model_validator(mode="after")
    def _consistent(self) -> OhlcBar:
        if not self.low <= min(self.open, self.close) <= max(self.open, self.close) <= self.high:
            raise ValueError(f"need low <= open, close <= high (got o={self.open} h={self.high} "
                             f"l={self.low} c={self.close})")
        seconds = INTERVAL_SECONDS[self.interval]
        if self.start_time.timestamp() % seconds:
            raise ValueError(f"start_time {iso_z(self.start_time)} is not on a {self.interval} boundary")
        if self.end_time - self.start_time != dt.timedelta(seconds=seconds):
            raise ValueError(f"end_time must be start_time + {self.interval}")
        if self.symbol is not None and not self.symbol.startswith(self.product):
            raise ValueError(f"symbol {self.symbol} is not an option on {self.product}")
        expected = ohlc_event_id(self.symbol or self.product, self.interval, self.start_time)
        if self.event_id != expected:
            raise ValueError(f"event_id must be {expected!r} (one id per window)")
        return self

    def key(self) -> str:
        return self.symbol or self.product


class VolSurfaceExpiry(BaseModel):
    """One expiry's smile: strikes increasing; moneyness = strike / spot; ivs null where
    unknown."""

    model_config = ConfigDict(frozen=True, extra="ignore", allow_inf_nan=False)
    expiry: Expiry
    days_to_expiry: Price
    strikes: list[Positive]
    moneyness: list[Positive]
    ivs: list[MaybePrice]
    atm_iv: MaybePrice

    @model_validator(mode="after")
    def _consistent(self) -> VolSurfaceExpiry:
        if not len(self.strikes) == len(self.moneyness) == len(self.ivs):
            raise ValueError("strikes, moneyness and ivs must have the same length")
        _increasing(self.strikes, "strikes")
        return self


class VolSurface(Record):
    """Implied volatility by expiry and strike for one product (topic analytics.vol_surface,
    key: product). Expiries are strictly increasing."""

    SCHEMA: ClassVar[str] = "vol_surface.v1"
    product: Product
    timestamp: Timestamp
    spot_price: Positive
    expiries: list[VolSurfaceExpiry]
    event_id: EventId

    @classmethod
    def default_event_id(cls, data: dict[str, Any]) -> str | None:
        return f"{data['product']}:{iso_z(_TIMESTAMP.validate_python(data['timestamp']))}"

    @model_validator(mode="after")
    def _consistent(self) -> VolSurface:
        if any(b.expiry <= a.expiry for a, b in zip(self.expiries, self.expiries[1:])):
            raise ValueError("expiries must be strictly increasing")
        return self

    def key(self) -> str:
        return self.product


class EnrichedUnderlying(Record):
    """An underlying tick with its session context (topic analytics.underlying, key: product).
    prev_price is the product's previous tick (null for the first of the session);
    change = price - prev_price, change_pct = 100 * change / prev_price."""

    SCHEMA: ClassVar[str] = "enriched_underlying.v1"
    product: Product
    price: Positive
    prev_price: MaybePositive
    change: MaybeNumber
    change_pct: MaybeNumber
    day_open: Positive
    day_high: Positive
    day_low: Positive
    timestamp: Timestamp
    tick_id: Count
    event_id: EventId

    @classmethod
    def default_event_id(cls, data: dict[str, Any]) -> str | None:
        return f"{data['product']}:{_int_like(data['tick_id'])}"

    @model_validator(mode="after")
    def _consistent(self) -> EnrichedUnderlying:
        if not self.day_low <= min(self.price, self.day_open) <= max(self.price, self.day_open) <= self.day_high:
            raise ValueError("need day_low <= price, day_open <= day_high")
        return self

    def key(self) -> str:
        return self.product


def _base64(value: str) -> str:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("value_b64 is not valid base64") from None
    return value


class DlqRecord(Record):
    """A message a service could not process, with where it came from and why (topic
    deltastream.dlq, key: source_topic). value_b64 is the original value, base64; event_id is
    `{service}:{source_topic}:{partition}:{offset}`."""

    SCHEMA: ClassVar[str] = "dlq_record.v1"
    source_topic: Text
    partition: Count
    offset: Count
    # JSON name "key"; the attribute is renamed because key() is every record's Kafka key.
    source_key: Annotated[str, Strict()] | None = Field(default=None, alias="key",
                                                        description="the original message key")
    value_b64: Annotated[str, Strict(), AfterValidator(_base64)]
    reason: Annotated[str, Strict(), Field(min_length=1)]
    error_type: Text
    service: Text
    timestamp: Timestamp
    event_id: EventId

    @classmethod
    def default_event_id(cls, data: dict[str, Any]) -> str | None:
        return dlq_event_id(data["service"], data["source_topic"], _int_like(data["partition"]),
                            _int_like(data["offset"]))

    @model_validator(mode="after")
    def _consistent(self) -> DlqRecord:
        expected = dlq_event_id(self.service, self.source_topic, self.partition, self.offset)
        if self.event_id != expected:
            raise ValueError(f"event_id must be {expected!r}")
        return self

    @classmethod
    def from_message(cls, *, topic: str, partition: int, offset: int, key: bytes | str | None,
                     value: bytes | None, reason: str, error_type: str, service: str,
                     timestamp: dt.datetime | None = None) -> DlqRecord:
        """Wrap a consumed message that failed (key bytes decoded as UTF-8, lossless otherwise)."""
        if isinstance(key, bytes):
            key = key.decode("utf-8", errors="backslashreplace")
        return cls(source_topic=topic, partition=partition, offset=offset, key=key,
                   value_b64=base64.b64encode(value or b"").decode("ascii"), reason=reason,
                   error_type=error_type, service=service,
                   timestamp=timestamp or dt.datetime.now(UTC))

    def value_bytes(self) -> bytes:
        """The original message value."""
        return base64.b64decode(self.value_b64)

    def key(self) -> str:
        return self.source_topic


def _json_safe(value: Any) -> Any:
    # Logging must not fail on an odd `extra` value: render what JSON cannot hold as str.
    return orjson.loads(orjson.dumps(value, default=str,
                                     option=orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY))


def _log_level(value: Any) -> Any:
    if isinstance(value, str):
        value = value.upper()
        return {"WARN": "WARNING", "FATAL": "CRITICAL"}.get(value, value)
    return value


class LogRecord(Record):
    """A structured log line of any DeltaStream process (topic deltastream.logs, key:
    service). event_id is a digest of service, timestamp, logger, level and message unless
    the producer sets one."""

    SCHEMA: ClassVar[str] = "log_record.v1"
    timestamp: Timestamp
    service: Text
    level: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"], BeforeValidator(_log_level)]
    logger: Annotated[str, Strict()]
    message: Annotated[str, Strict()]
    extra: Annotated[dict[str, Any], BeforeValidator(_json_safe)] = Field(default_factory=dict)
    event_id: EventId

    @classmethod
    def default_event_id(cls, data: dict[str, Any]) -> str | None:
        ts = iso_z(_TIMESTAMP.validate_python(data["timestamp"]))
        return f"log:{data['service']}:" + _digest(ts, data["logger"], _log_level(data["level"]),
                                                   data["message"])

    def key(self) -> str:
        return self.service


class NewsItem(Record):
    """A news headline or note (topic market.news, key: product, or "*" for market-wide
    news). event_id is a digest of source, headline and timestamp unless the producer sets
    one."""

    SCHEMA: ClassVar[str] = "news_item.v1"
    product: Product | None = None
    headline: Annotated[str, Strict(), Field(min_length=1, max_length=1000)]
    body: Annotated[str, Strict()] | None = None
    source: Text
    timestamp: Timestamp
    event_id: EventId

    @classmethod
    def default_event_id(cls, data: dict[str, Any]) -> str | None:
        ts = iso_z(_TIMESTAMP.validate_python(data["timestamp"]))
        return "news:" + _digest(data["source"], data["headline"], ts)

    def key(self) -> str:
        return self.product or "*"


ALL_RECORDS: tuple[type[Record], ...] = (
    UnderlyingTick, OptionQuote, OptionChain, ChainAnalytics, OhlcBar, VolSurface,
    EnrichedUnderlying, DlqRecord, LogRecord, NewsItem)

__all__ = [
    "UTC", "INTERVAL_SECONDS", "OPTION_TYPES", "LOG_LEVELS", "as_utc", "iso_z", "format_strike",
    "option_symbol", "chain_key", "ohlc_event_id", "dlq_event_id", "Record", "UnderlyingTick",
    "OptionQuote", "OptionChain", "ChainAnalytics", "OhlcBar", "VolSurfaceExpiry", "VolSurface",
    "EnrichedUnderlying", "DlqRecord", "LogRecord", "NewsItem", "ALL_RECORDS",
]
