"""Input messages → typed in-memory records, or the reason they are poison.

The schema models (`schemas.codec.decode`) are the judges of what is valid, but validating
a 40-strike chain snapshot with pydantic costs ~2 ms, more than the whole budget per
snapshot at 1,000 snapshots/s. So every message goes through a fast check first: orjson,
then plain type checks and numpy over whole columns, written to accept only what the
schema accepts (tests/processors/test_decode.py compares both on valid and mutated
records). Anything the fast check does not accept, for whatever reason, is handed to the
schema model: a `SchemaError` there sends the message to the DLQ with the model's reason;
a message the model does accept (e.g. an unusual but legal timestamp format) is processed
from the model's canonical form.
"""
from __future__ import annotations

import datetime as dt
import math
import operator
import re
import time
from dataclasses import dataclass
from itertools import chain
from typing import Any, Callable, Sequence

import numpy as np
import orjson

from schemas.codec import SchemaError, decode
from schemas.records import (DATE_PATTERN, ISO_Z_PATTERN, PRODUCT_PATTERN, OptionChain, OptionQuote,
                             Record, UnderlyingTick)

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_PRODUCT = re.compile(PRODUCT_PATTERN)
_DATE = re.compile(DATE_PATTERN)
_ISO_Z = re.compile(ISO_Z_PATTERN)
_STRIKE_TEXT = re.compile(r"^\d+(\.\d+)?$")  # the strike part of an option symbol
_NUMBER = {int, float}
_NUMBER_OR_NULL = {int, float, type(None)}
_MAX_ID = 256
_MAX_SYMBOL = 64


class NotFast(Exception):
    """The fast check cannot vouch for this message; let the schema model decide."""


@dataclass(frozen=True, slots=True)
class Source:
    """Where a message came from (for the DLQ and for replay detection)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None = None  # Kafka message timestamp, seconds


@dataclass(slots=True)
class Tick:
    product: str
    price: float
    ts: int  # event time, microseconds since the epoch (UTC)
    timestamp: str  # event time as published (ISO-8601 ...Z)
    tick_id: int
    event_id: str
    src: Source


@dataclass(slots=True)
class Quote:
    symbol: str
    product: str
    expiry: str
    last: float
    volume: int  # cumulative for the trading day
    ts: int
    timestamp: str
    event_id: str
    src: Source


@dataclass(slots=True)
class Side:
    """One side of a chain as columns aligned to the chain's strikes (NaN where unquoted)."""

    bid: np.ndarray
    ask: np.ndarray
    last: np.ndarray
    volume: np.ndarray
    open_interest: np.ndarray
    iv: np.ndarray
    delta: np.ndarray


@dataclass(slots=True)
class Chain:
    product: str
    expiry: str
    spot: float
    strikes: np.ndarray
    calls: Side
    puts: Side
    ts: int
    timestamp: str
    event_id: str
    src: Source

    @property
    def key(self) -> str:
        return f"{self.product}|{self.expiry}"


@dataclass(frozen=True, slots=True)
class Poison:
    src: Source
    reason: str
    error_type: str


# -- helpers ----------------------------------------------------------------------------------
_ts_cache: dict[str, int] = {}


def timestamp_us(text: Any) -> int:
    """Microseconds since the epoch of a `...Z` timestamp; NotFast for any other form."""
    try:
        return _ts_cache[text]
    except (KeyError, TypeError):
        pass
    if type(text) is not str or not _ISO_Z.fullmatch(text):
        raise NotFast
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise NotFast from None
    delta = when - _EPOCH
    us = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if len(_ts_cache) > 50_000:
        _ts_cache.clear()
    _ts_cache[text] = us
    return us


def _number(value: Any) -> float:
    if type(value) not in _NUMBER or not math.isfinite(value):
        raise NotFast
    return float(value)


def _text(value: Any, max_len: int = _MAX_ID) -> str:
    if type(value) is not str or not 0 < len(value) <= max_len:
        raise NotFast
    return value


def _product(value: Any) -> str:
    if type(value) is not str or not _PRODUCT.fullmatch(value):
        raise NotFast
    return value


def _expiry(value: Any) -> str:
    if type(value) is not str or not _DATE.fullmatch(value):
        raise NotFast
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        raise NotFast from None
    return value


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:
        raise NotFast
    return value


def strike_text(strike: float) -> str:
    """The strike as written in a symbol (schemas.records.format_strike, without checks)."""
    return str(int(strike)) if strike.is_integer() else repr(strike)


# Numeric quote fields, in the column order of the matrix `_check_quotes` builds.
_NUMERIC = ("strike", "bid", "ask", "last", "volume", "open_interest", "iv", "delta", "gamma",
            "vega", "theta", "rho")
_COL = {name: i for i, name in enumerate(_NUMERIC)}
_IV, _VOLUME, _OI = _COL["iv"], _COL["volume"], _COL["open_interest"]
_numeric_row = operator.itemgetter(*_NUMERIC)
_TEXT = ("product", "expiry", "option_type", "symbol", "timestamp", "event_id")
_text_row = operator.itemgetter(*_TEXT)
_NONE = type(None)


# -- underlying ticks -------------------------------------------------------------------------
def _tick_fast(d: Any, src: Source) -> Tick:
    if type(d) is not dict:
        raise NotFast
    product = _product(d.get("product"))
    price = _number(d.get("price"))
    if not price > 0:
        raise NotFast
    timestamp = d.get("timestamp")
    ts = timestamp_us(timestamp)
    tick_id = _count(d.get("tick_id"))
    event_id = d.get("event_id")
    event_id = f"{product}:{tick_id}" if event_id is None else _text(event_id)
    return Tick(product, price, ts, timestamp, tick_id, event_id, src)


# -- option quotes ----------------------------------------------------------------------------
_strike_texts: dict[float, str] = {}


def _strike_text(strike: float) -> str:
    try:
        return _strike_texts[strike]
    except KeyError:
        text = strike_text(strike)
        if not _STRIKE_TEXT.fullmatch(text):
            raise NotFast from None  # e.g. 1e-07: the model's symbol pattern rejects it
        if len(_strike_texts) > 100_000:
            _strike_texts.clear()
        _strike_texts[strike] = text
        return text


def _check_quotes(rows: Sequence[Any], fixed: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate quote dicts as columns (one C-level pass per column, numpy for the rest).

    `fixed` (quotes inside chains) gives, per row, the product, expiry and option_type the
    row must carry, and in "sides" the (first row, end row, symbol prefix) of every chain side,
    from which the symbols the rows must carry are made; without it each row's own values
    are checked. Returns the numeric matrix `m` (rows × _NUMERIC, NaN for a null iv) and the
    text columns (tuples)."""
    if not rows:
        raise NotFast
    if set(map(type, rows)) - {dict}:
        raise NotFast
    same = _same_layout_columns(rows)
    if same is not None:
        numeric, text, kinds = same
    else:
        try:
            # one flat list of every row's numbers (one C-level pass), and the text fields
            # transposed into columns by zip: no per-row Python code
            numbers = list(chain.from_iterable(map(_numeric_row, rows)))
            columns = list(zip(*map(_text_row, rows)))
        except (KeyError, TypeError):
            raise NotFast from None
        text = dict(zip(_TEXT, columns))
        kinds = set(map(type, numbers))
    if kinds - _NUMBER_OR_NULL:
        raise NotFast  # strings, booleans, lists...
    # null → NaN (JSON itself cannot hold NaN)
    if same is not None:
        m = np.array(numeric, dtype=np.float64).T
    else:
        m = np.array(numbers, dtype=np.float64).reshape(len(rows), len(_NUMERIC))
    if _NONE in kinds:
        nulls = np.isnan(m)
        nulls[:, _IV] = False
        if nulls.any():
            raise NotFast  # null outside iv
    if (np.abs(m[:, :_IV]) == np.inf).any() or (np.abs(m[:, _IV + 1:]) == np.inf).any():
        raise NotFast
    with np.errstate(invalid="ignore"):
        if not ((m[:, 0] > 0).all() and (m[:, 1:_IV] >= 0).all()  # strike; bid..oi
                and not (m[:, _IV] < 0).any()  # iv: null or >= 0
                and (m[:, 1] <= m[:, 2]).all()  # bid <= ask
                and (np.abs(m[:, _COL["delta"]]) <= 1).all()
                and (m[:, _COL["gamma"]] >= 0).all() and (m[:, _COL["vega"]] >= 0).all()):
            raise NotFast
    counts = m[:, _VOLUME:_OI + 1]
    if not (counts == np.floor(counts)).all():
        raise NotFast
    types = text["option_type"]
    if fixed is not None:
        for name in ("product", "expiry", "option_type"):
            if text[name] != tuple(fixed[name]):
                raise NotFast
        strikes = m[:, 0].tolist()
        symbols = text["symbol"]
        for lo, hi, prefix in fixed["sides"]:
            if symbols[lo:hi] != _side_symbols(prefix, tuple(strikes[lo:hi])):
                raise NotFast
        is_call = fixed["is_call"]
    else:
        for p in set(text["product"]):
            _product(p)
        for e in set(text["expiry"]):
            _expiry(e)
        if set(types) - {"CALL", "PUT"}:
            raise NotFast
        is_call = np.array([t == "CALL" for t in types])
        # symbols: {product}{YYYYMMDD}{C|P}{strike}
        expected = tuple(f"{p}{e[:4]}{e[5:7]}{e[8:]}{o[0]}{_strike_text(k)}" for p, e, o, k in
                         zip(text["product"], text["expiry"], types, m[:, 0].tolist()))
        if expected != text["symbol"]:
            raise NotFast
    if max(map(len, text["symbol"])) > _MAX_SYMBOL:
        raise NotFast
    delta = m[:, _COL["delta"]]
    if ((delta < 0) & is_call).any() or ((delta > 0) & ~is_call).any():
        raise NotFast
    ids = text["event_id"]
    if set(map(type, ids)) != {str} or min(map(len, ids)) < 1 or max(map(len, ids)) > _MAX_ID:
        raise NotFast
    parsed = {t: timestamp_us(t) for t in set(text["timestamp"])}
    return {"m": m, "parsed_ts": parsed, **text}


_FIELDS = frozenset(_NUMERIC + _TEXT)
_layouts: dict[tuple[str, ...], tuple[list[int], list[int], int]] = {}


def _same_layout_columns(rows: Sequence[dict]) -> tuple[list[list], dict[str, tuple], set] | None:
    """(numeric columns in _NUMERIC order, text columns by name, the numeric value types)
    when every row has exactly the quote fields, in the same order, with the same value
    types (iv: any number or null); None otherwise (the caller then looks each field up).

    A feed writes every quote the same way, so instead of 18 hash lookups per row this
    reads keys and values in dict order (two sequential passes) and checks the layout by
    comparing flat lists, which for orjson's shared key strings is pointer comparisons.
    About 3x cheaper per row than the lookups; the values and checks are the same."""
    keys = tuple(rows[0])
    layout = _layouts.get(keys)
    if layout is None:
        if len(keys) != len(_FIELDS) or set(keys) != _FIELDS:
            return None  # extra, missing or repeated fields: the general path decides
        if len(_layouts) > 100:
            _layouts.clear()
        layout = _layouts[keys] = ([keys.index(k) for k in _NUMERIC], [keys.index(k) for k in _TEXT],
                                   keys.index("iv"))
    numeric_at, text_at, iv_at = layout
    width = len(keys)
    n = len(rows)
    if list(chain.from_iterable(rows)) != list(keys) * n:
        return None
    values = list(chain.from_iterable(map(dict.values, rows)))
    types = list(map(type, values))
    iv_types = set(types[iv_at::width])
    pattern = types[:width]
    pattern[iv_at] = float
    types[iv_at::width] = [float] * n  # iv may be null in some rows and not in others
    if types != pattern * n:
        return None
    kinds = {pattern[j] for j in numeric_at} | iv_types
    numeric = [values[j::width] for j in numeric_at]
    text = {name: tuple(values[j::width]) for name, j in zip(_TEXT, text_at)}
    return numeric, text, kinds


_symbols_cache: dict[tuple[str, tuple[float, ...]], tuple[str, ...]] = {}


def _side_symbols(prefix: str, strikes: tuple[float, ...]) -> tuple[str, ...]:
    """The symbols of one chain side: its prefix + each strike as written in a symbol. A
    chain's strikes rarely change between snapshots, so this is a dict lookup."""
    key = (prefix, strikes)
    try:
        return _symbols_cache[key]
    except KeyError:
        pass
    symbols = tuple(prefix + _strike_text(k) for k in strikes)
    if len(_symbols_cache) > 10_000:
        _symbols_cache.clear()
    _symbols_cache[key] = symbols
    return symbols


def _quotes(c: dict[str, Any], sources: Sequence[Source]) -> list[Quote]:
    parsed = c["parsed_ts"]
    return [Quote(sym, prod, exp, last, vol, parsed[ts], ts, eid, src) for
            sym, prod, exp, last, vol, ts, eid, src in
            zip(c["symbol"], c["product"], c["expiry"], c["m"][:, _COL["last"]].tolist(),
                map(int, c["m"][:, _VOLUME].tolist()), c["timestamp"], c["event_id"], sources)]


def _quote_fast(d: Any, src: Source) -> Quote:
    return _quotes(_check_quotes([d]), [src])[0]


def _quotes_fast(rows: list[Any], sources: Sequence[Source]) -> list[Quote]:
    return _quotes(_check_quotes(rows), sources)


# -- chain snapshots --------------------------------------------------------------------------
_SIDE_COLUMNS = ("bid", "ask", "last", "volume", "open_interest", "iv", "delta")


def _chain_head(d: Any) -> tuple:
    if type(d) is not dict:
        raise NotFast
    product = _product(d.get("product"))
    expiry = _expiry(d.get("expiry"))
    spot = _number(d.get("spot_price"))
    if not spot > 0:
        raise NotFast
    strikes = d.get("strikes")  # values checked by _strike_arrays, for all chains at once
    if type(strikes) is not list or not strikes or set(map(type, strikes)) - _NUMBER:
        raise NotFast
    timestamp = d.get("timestamp")
    ts = timestamp_us(timestamp)
    event_id = _text(d.get("event_id"))
    calls, puts = d.get("calls"), d.get("puts")
    if type(calls) is not list or type(puts) is not list:
        raise NotFast
    return product, expiry, spot, strikes, timestamp, ts, event_id, calls, puts


_SIDE = tuple(_COL[k] for k in ("bid", "ask", "last", "volume", "open_interest", "iv", "delta"))


def _align(m: np.ndarray, lo: int, hi: int, strikes: np.ndarray) -> Side:
    """The rows lo:hi of one side as columns aligned to the chain's strikes."""
    q_strikes = m[lo:hi, 0]
    n = len(strikes)
    if hi - lo == n and np.array_equal(q_strikes, strikes):
        return Side(*(m[lo:hi, k] for k in _SIDE))  # every strike quoted, in order
    pos = np.searchsorted(strikes, q_strikes)
    if (pos >= n).any() or not np.array_equal(strikes[np.minimum(pos, n - 1)], q_strikes):
        raise NotFast  # a strike that is not listed
    if len(np.unique(pos)) != len(pos):
        raise NotFast  # a strike quoted twice
    out = []
    for k in _SIDE:
        column = np.full(n, np.nan)
        column[pos] = m[lo:hi, k]
        out.append(column)
    return Side(*out)


def _strike_arrays(lists: list[list]) -> list[np.ndarray]:
    """Each chain's strikes as an array, checked (finite, positive, strictly increasing)
    with one numpy call per check for all chains."""
    flat = np.array(list(chain.from_iterable(lists)), dtype=np.float64)
    ends = np.cumsum([len(k) for k in lists])
    rising = np.diff(flat) > 0
    rising[ends[:-1] - 1] = True  # from one chain's last strike to the next one's first
    if not (np.isfinite(flat).all() and (flat > 0).all() and rising.all()):
        raise NotFast
    return np.split(flat, ends[:-1])


def _chains_fast(dicts: list[Any], sources: Sequence[Source]) -> list[Chain]:
    heads = [_chain_head(d) for d in dicts]
    strikes = _strike_arrays([h[3] for h in heads])
    heads = [h[:3] + (k,) + h[4:] for h, k in zip(heads, strikes)]
    rows: list[Any] = []
    fixed: dict[str, Any] = {"product": [], "expiry": [], "option_type": [], "sides": []}
    bounds = []
    for product, expiry, _, _, timestamp, _, _, calls, puts in heads:
        start = len(rows)
        for side, option_type in ((calls, "CALL"), (puts, "PUT")):
            lo = len(rows)
            rows.extend(side)
            k = len(side)
            fixed["product"] += [product] * k
            fixed["expiry"] += [expiry] * k
            fixed["option_type"] += [option_type] * k
            fixed["sides"].append((lo, lo + k, f"{product}{expiry[:4]}{expiry[5:7]}{expiry[8:]}{option_type[0]}"))
        bounds.append((start, start + len(calls), len(rows)))
    if not rows:  # chains without a single quote (legal, if useless)
        empty = np.empty((0, len(_NUMERIC)))
        return [Chain(h[0], h[1], h[2], h[3], _align(empty, 0, 0, h[3]), _align(empty, 0, 0, h[3]),
                      h[5], h[4], h[6], src) for h, src in zip(heads, sources)]
    fixed["is_call"] = np.repeat(np.tile([True, False], len(heads)), np.diff([0, *chain.from_iterable(
        (b, c) for _, b, c in bounds)]))
    cols = _check_quotes(rows, fixed)
    m = cols["m"]
    return [Chain(product, expiry, spot, strikes, _align(m, a, b, strikes), _align(m, b, c, strikes),
                  ts, timestamp, event_id, src)
            for (product, expiry, spot, strikes, timestamp, ts, event_id, _, _), (a, b, c), src
            in zip(heads, bounds, sources)]


def _chain_fast(d: Any, src: Source) -> Chain:
    return _chains_fast([d], [src])[0]


# -- beyond the schema ------------------------------------------------------------------------
MAX_FUTURE_US = 7 * 86_400 * 1_000_000


def implausible(record: Any, now_us: int | None = None) -> str | None:
    """Why a schema-valid record still cannot be processed, if it cannot: an event time far
    in the future would close every OHLC window of its instrument and make all later records
    "late". (Old event times are fine: replays.)"""
    now_us = time.time_ns() // 1000 if now_us is None else now_us
    if record.ts > now_us + MAX_FUTURE_US:
        return f"impossible value: event time {record.timestamp} is more than 7 days ahead of the clock"
    return None


# -- entry point ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Kind:
    model: type[Record]
    fast: Callable[[Any, Source], Any]
    # optional: check `chunk` messages at once (all-or-nothing; per message on NotFast).
    # Chunks, not the whole batch: a batch of 2,000 chain snapshots is ~70 MB of JSON as
    # Python objects, and checking it in cache-sized pieces (the objects of one chunk are
    # freed before the next is parsed) was measured ~25% cheaper per snapshot.
    fast_batch: Callable[[list[Any], Sequence[Source]], list[Any]] | None = None
    chunk: int = 500


TICK = Kind(UnderlyingTick, _tick_fast)
QUOTE = Kind(OptionQuote, _quote_fast, _quotes_fast, chunk=500)
CHAIN = Kind(OptionChain, _chain_fast, _chains_fast, chunk=8)


def decode_one(kind: Kind, src: Source) -> Any:
    """The typed record of one message, or a Poison saying why it cannot be processed."""
    raw = src.value
    try:
        return _plausible(kind.fast(orjson.loads(raw), src))
    except (NotFast, orjson.JSONDecodeError, TypeError):
        pass
    try:
        model = decode(raw, kind.model)
    except SchemaError as exc:
        return Poison(src, exc.reason, "SchemaError")
    # Legal but unusual (e.g. another timestamp format): go on from the canonical form.
    canonical = model.model_dump(mode="json", by_alias=True)
    try:
        return _plausible(kind.fast(canonical, src))
    except NotFast:
        return Poison(src, f"{kind.model.SCHEMA}: accepted by the schema but not processable",
                      "SchemaError")


def _plausible(record: Any) -> Any:
    reason = implausible(record)
    return record if reason is None else Poison(record.src, reason, "ImplausibleValue")


def decode_many(kind: Kind, sources: Sequence[Source]) -> tuple[list[Any], list[Poison]]:
    """Records in input order, and the poison messages among `sources`."""
    if kind.fast_batch is None or len(sources) < 2:
        return _decode_each(kind, sources)
    good: list[Any] = []
    bad: list[Poison] = []
    for i in range(0, len(sources), kind.chunk):
        chunk = sources[i:i + kind.chunk]
        try:
            records = kind.fast_batch([orjson.loads(s.value) for s in chunk], chunk)
        except (NotFast, orjson.JSONDecodeError, TypeError):
            g, b = _decode_each(kind, chunk)  # somebody in the chunk needs a closer look
            good += g
            bad += b
            continue
        for r in records:
            r = _plausible(r)
            (bad if type(r) is Poison else good).append(r)
    return good, bad


def _decode_each(kind: Kind, sources: Sequence[Source]) -> tuple[list[Any], list[Poison]]:
    good, bad = [], []
    for src in sources:
        rec = decode_one(kind, src)
        (bad if isinstance(rec, Poison) else good).append(rec)
    return good, bad
