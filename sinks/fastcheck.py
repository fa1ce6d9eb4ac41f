"""Schema checks without pydantic for the record shapes a sink sees most, like the
processors' fast path (stream_processors.decode): plain type and range checks on the
orjson dict, written to accept only what the record model accepts. Whatever they cannot
vouch for raises `NotFast` and goes to the model (`schemas.codec.decode`), which decides
(and gives the DLQ its reason); tests/sinks/test_decode.py compares both on valid and
mutated records.

A check returns the record's top-level times (UTC datetimes, equal to the model's) and sets
a missing event_id the way the model does.
"""
from __future__ import annotations

import datetime as dt
import math
import re
from typing import Any, Callable

from schemas.records import (DATE_PATTERN, ISO_Z_PATTERN, PRODUCT_PATTERN, ChainAnalytics,
                             EnrichedUnderlying, OptionChain, Record, UnderlyingTick)
from stream_processors.decode import CHAIN, NotFast

# fullmatch: Python's `$` also matches before a final newline, pydantic's (Rust) does not.
_PRODUCT = re.compile(PRODUCT_PATTERN).fullmatch
_DATE = re.compile(DATE_PATTERN).fullmatch
_ISO_Z = re.compile(ISO_Z_PATTERN).fullmatch
_NUMBER = (int, float)  # strict floats: JSON integers and floats, never booleans or strings
_INF = math.inf
_MAX_ID = 256

Check = Callable[[dict[str, Any]], dict[str, dt.datetime]]

_times: dict[str, dt.datetime] = {}  # event times repeat (one per snapshot across products)
_products: set[str] = set()
_expiries: set[str] = set()


def timestamp(value: Any) -> dt.datetime:
    """A `...Z` timestamp as a UTC datetime; NotFast for any other form (the model may
    still accept it: other offsets, unix numbers)."""
    try:
        return _times[value]
    except (KeyError, TypeError):
        pass
    if type(value) is not str or not _ISO_Z(value):
        raise NotFast
    try:
        when = dt.datetime.fromisoformat(value)  # "Z" -> timezone.utc, like the model's as_utc
    except ValueError:
        raise NotFast from None
    if len(_times) >= 50_000:
        _times.clear()
    _times[value] = when
    return when


def _known(value: Any, seen: set[str], valid: Callable[[str], bool]) -> str:
    """`value` if it is a string `valid` accepts; accepted values are remembered (bounded)."""
    if type(value) is not str:
        raise NotFast
    if value in seen:
        return value
    if not valid(value):
        raise NotFast
    if len(seen) < 10_000:
        seen.add(value)
    return value


def _is_date(value: str) -> bool:
    if not _DATE(value):
        return False
    try:
        dt.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def product(value: Any) -> str:
    return _known(value, _products, lambda v: bool(_PRODUCT(v)))


def expiry(value: Any) -> str:
    return _known(value, _expiries, _is_date)


def _positive(value: Any) -> None:
    if type(value) not in _NUMBER or not 0 < value < _INF:
        raise NotFast


def _price(value: Any) -> None:  # >= 0
    if type(value) not in _NUMBER or not 0 <= value < _INF:
        raise NotFast


def _maybe_positive(value: Any) -> None:
    if value is not None and (type(value) not in _NUMBER or not 0 < value < _INF):
        raise NotFast


def _maybe_price(value: Any) -> None:
    if value is not None and (type(value) not in _NUMBER or not 0 <= value < _INF):
        raise NotFast


def _maybe_number(value: Any) -> None:
    if value is not None and (type(value) not in _NUMBER or not -_INF < value < _INF):
        raise NotFast


def _count(value: Any) -> int:
    if type(value) is not int or value < 0:  # the model also takes integral floats: NotFast
        raise NotFast
    return value


def _event_id(d: dict[str, Any], default: str | None) -> None:
    value = d.get("event_id")
    if value is None:
        if default is None:
            raise NotFast  # required
        d["event_id"] = default
    elif type(value) is not str or not 0 < len(value) <= _MAX_ID:
        raise NotFast


def underlying_tick(d: dict[str, Any]) -> dict[str, dt.datetime]:
    p = product(d.get("product"))
    _positive(d.get("price"))
    when = timestamp(d.get("timestamp"))
    tick_id = _count(d.get("tick_id"))
    _event_id(d, f"{p}:{tick_id}")
    return {"timestamp": when}


def enriched_underlying(d: dict[str, Any]) -> dict[str, dt.datetime]:
    p = product(d.get("product"))
    price, day_open, high, low = d.get("price"), d.get("day_open"), d.get("day_high"), d.get("day_low")
    _positive(price)
    _positive(day_open)
    _positive(high)
    _positive(low)
    try:  # required, null allowed: a missing key is an error
        _maybe_positive(d["prev_price"])
        _maybe_number(d["change"])
        _maybe_number(d["change_pct"])
    except KeyError:
        raise NotFast from None
    if not low <= min(price, day_open) <= max(price, day_open) <= high:
        raise NotFast
    when = timestamp(d.get("timestamp"))
    tick_id = _count(d.get("tick_id"))
    _event_id(d, f"{p}:{tick_id}")
    return {"timestamp": when}


def chain_analytics(d: dict[str, Any]) -> dict[str, dt.datetime]:
    product(d.get("product"))
    expiry(d.get("expiry"))
    _positive(d.get("spot_price"))
    _positive(d.get("atm_strike"))
    _positive(d.get("max_pain_strike"))
    try:
        pcr_oi = d["pcr_oi"]
        _maybe_price(pcr_oi)
        _maybe_price(d["pcr_volume"])
        _maybe_price(d["atm_iv"])
        _maybe_price(d["atm_straddle_price"])
        _maybe_number(d["iv_skew"])
    except KeyError:
        raise NotFast from None
    calls, puts = _count(d.get("total_call_oi")), _count(d.get("total_put_oi"))
    if (calls == 0 and pcr_oi is not None or _count(d.get("call_buildup_otm")) > calls
            or _count(d.get("put_buildup_otm")) > puts):
        raise NotFast
    when = timestamp(d.get("timestamp"))
    _event_id(d, None)
    return {"timestamp": when}


def option_chain(d: dict[str, Any]) -> dict[str, dt.datetime]:
    # The processors' chain check (numpy over the quote columns; tests/processors/test_decode.py
    # holds it to the model); product and expiry first with full matches.
    if type(d) is not dict:
        raise NotFast
    product(d.get("product"))
    expiry(d.get("expiry"))
    when = timestamp(d.get("timestamp"))
    try:
        CHAIN.fast(d, None)
    except (TypeError, KeyError, ValueError, AttributeError, IndexError, OverflowError):
        raise NotFast from None
    return {"timestamp": when}


CHECKS: dict[type[Record], Check] = {
    UnderlyingTick: underlying_tick,
    EnrichedUnderlying: enriched_underlying,
    ChainAnalytics: chain_analytics,
    OptionChain: option_chain,
}
