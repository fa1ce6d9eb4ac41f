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


# Checks inline, without a helper call per field (~40% cheaper for these hot shapes):
# numbers are ints or floats (never booleans), finite, and in the model's range.
def underlying_tick(d: dict[str, Any]) -> dict[str, dt.datetime]:
    p = d.get("product")
    if type(p) is not str or p not in _products:
        p = product(p)
    price = d.get("price")
    if type(price) not in _NUMBER or not 0 < price < _INF:
        raise NotFast
    ts = d.get("timestamp")
    when = _times.get(ts) if type(ts) is str else None
    if when is None:
        when = timestamp(ts)
    tick_id = d.get("tick_id")
    if type(tick_id) is not int or tick_id < 0:  # the model also takes integral floats: NotFast
        raise NotFast
    event_id = d.get("event_id")
    if event_id is None:
        d["event_id"] = f"{p}:{tick_id}"
    elif type(event_id) is not str or not 0 < len(event_id) <= _MAX_ID:
        raise NotFast
    return {"timestamp": when}


def enriched_underlying(d: dict[str, Any]) -> dict[str, dt.datetime]:
    p = d.get("product")
    if type(p) is not str or p not in _products:
        p = product(p)
    price, day_open, high, low = d.get("price"), d.get("day_open"), d.get("day_high"), d.get("day_low")
    if (type(price) not in _NUMBER or type(day_open) not in _NUMBER or type(high) not in _NUMBER
            or type(low) not in _NUMBER):
        raise NotFast
    # all positive and finite, low <= price, open <= high (a NaN fails every comparison)
    if not (0 < low <= price <= high < _INF and low <= day_open <= high):
        raise NotFast
    try:  # required, null allowed: a missing key is an error
        prev, change, pct = d["prev_price"], d["change"], d["change_pct"]
    except KeyError:
        raise NotFast from None
    if prev is not None and (type(prev) not in _NUMBER or not 0 < prev < _INF):
        raise NotFast
    if change is not None and (type(change) not in _NUMBER or not -_INF < change < _INF):
        raise NotFast
    if pct is not None and (type(pct) not in _NUMBER or not -_INF < pct < _INF):
        raise NotFast
    ts = d.get("timestamp")
    when = _times.get(ts) if type(ts) is str else None
    if when is None:
        when = timestamp(ts)
    tick_id = d.get("tick_id")
    if type(tick_id) is not int or tick_id < 0:
        raise NotFast
    event_id = d.get("event_id")
    if event_id is None:
        d["event_id"] = f"{p}:{tick_id}"
    elif type(event_id) is not str or not 0 < len(event_id) <= _MAX_ID:
        raise NotFast
    return {"timestamp": when}


def chain_analytics(d: dict[str, Any]) -> dict[str, dt.datetime]:
    p, e = d.get("product"), d.get("expiry")
    if type(p) is not str or p not in _products:
        product(p)
    if type(e) is not str or e not in _expiries:
        expiry(e)
    spot, atm, pain = d.get("spot_price"), d.get("atm_strike"), d.get("max_pain_strike")
    if (type(spot) not in _NUMBER or type(atm) not in _NUMBER or type(pain) not in _NUMBER
            or not (0 < spot < _INF and 0 < atm < _INF and 0 < pain < _INF)):
        raise NotFast
    try:  # required, null allowed
        pcr_oi, pcr_volume, atm_iv = d["pcr_oi"], d["pcr_volume"], d["atm_iv"]
        straddle, skew = d["atm_straddle_price"], d["iv_skew"]
    except KeyError:
        raise NotFast from None
    if ((pcr_oi is not None and (type(pcr_oi) not in _NUMBER or not 0 <= pcr_oi < _INF))
            or (pcr_volume is not None and (type(pcr_volume) not in _NUMBER or not 0 <= pcr_volume < _INF))
            or (atm_iv is not None and (type(atm_iv) not in _NUMBER or not 0 <= atm_iv < _INF))
            or (straddle is not None and (type(straddle) not in _NUMBER or not 0 <= straddle < _INF))
            or (skew is not None and (type(skew) not in _NUMBER or not -_INF < skew < _INF))):
        raise NotFast
    calls, puts = d.get("total_call_oi"), d.get("total_put_oi")
    call_otm, put_otm = d.get("call_buildup_otm"), d.get("put_buildup_otm")
    if (type(calls) is not int or type(puts) is not int or type(call_otm) is not int
            or type(put_otm) is not int or calls < 0 or puts < 0 or call_otm < 0 or put_otm < 0
            or call_otm > calls or put_otm > puts or (calls == 0 and pcr_oi is not None)):
        raise NotFast
    ts = d.get("timestamp")
    when = _times.get(ts) if type(ts) is str else None
    if when is None:
        when = timestamp(ts)
    event_id = d.get("event_id")
    if type(event_id) is not str or not 0 < len(event_id) <= _MAX_ID:  # required
        raise NotFast
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
