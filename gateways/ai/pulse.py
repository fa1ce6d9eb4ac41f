"""The market pulse: facts taken from the stored analytics (no recomputation), and the
deterministic template that writes them up.

Sources, as the analytics API reads them: the latest chain analytics per expiry from
`latest:analytics:{product}:{expiry}` (MongoDB `chain_analytics` on a miss) and, for the
trends, the first `chain_analytics` snapshot of the same expiry at or after one hour before
the latest (the `/analytics/oi_buildup` baseline). The front expiry is the nearest listed
expiry that has analytics. Derived numbers use `gateways.analytics.compute`, so they are the
ones the analytics API returns.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from redis import Redis
from redis.exceptions import RedisError

from gateways.analytics.compute import max_pain_row, oi_buildup_row
from schemas.records import as_utc, iso_z

BASELINE = dt.timedelta(hours=1)
PCR_FLAT = 0.02  # |ΔPCR| below this reads as "flat"


def _parse_ts(value: Any) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return as_utc(value)
    return as_utc(dt.datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def _normalise(doc: dict[str, Any]) -> dict[str, Any]:
    """A chain-analytics value as published: `timestamp` a datetime, `expiry` a string."""
    doc = {k: v for k, v in doc.items() if k != "_id"}
    doc["timestamp"] = _parse_ts(doc["timestamp"])
    doc["expiry"] = str(doc["expiry"])[:10]
    return doc


def expiries(db: Database, redis: Redis, product: str) -> list[str]:
    try:
        listed = [e.decode() for e in redis.zrange(f"expiries:{product}", 0, -1)]
    except RedisError:
        listed = []
    return listed or sorted(db.chain_analytics.distinct("expiry", {"product": product}))


def latest_analytics(db: Database, redis: Redis, product: str) -> dict[str, Any] | None:
    """The front expiry's latest chain analytics (Redis first, MongoDB on a miss)."""
    for expiry in expiries(db, redis, product):
        raw = None
        try:
            raw = redis.get(f"latest:analytics:{product}:{expiry}")
        except RedisError:
            pass
        if raw is not None:
            return _normalise(orjson.loads(raw))
        doc = db.chain_analytics.find_one({"product": product, "expiry": expiry},
                                          sort=[("timestamp", DESCENDING)])
        if doc is not None:
            return _normalise(doc)
    return None


def _pct(value: float, of: float) -> float | None:
    return 100.0 * value / of if of else None


def pulse_facts(db: Database, redis: Redis, product: str) -> dict[str, Any] | None:
    """Every number the pulse cites, or None when the product has no analytics yet."""
    last = latest_analytics(db, redis, product)
    if last is None:
        return None
    base = db.chain_analytics.find_one(
        {"product": product, "expiry": last["expiry"], "timestamp": {"$gte": last["timestamp"] - BASELINE}},
        sort=[("timestamp", ASCENDING)])
    base = _normalise(base) if base is not None and _parse_ts(base["timestamp"]) <= last["timestamp"] else last
    buildup, pain = oi_buildup_row(base, last), max_pain_row(last)
    pcr, pcr_base = last.get("pcr_oi"), base.get("pcr_oi")
    pcr_change = pcr - pcr_base if pcr is not None and pcr_base is not None else None
    trend = None if pcr_change is None else (
        "flat" if abs(pcr_change) < PCR_FLAT else "rising" if pcr_change > 0 else "falling")
    atm_iv, skew = last.get("atm_iv"), last.get("iv_skew")
    return {
        "product": product, "expiry": last["expiry"], "as_of": iso_z(last["timestamp"]),
        "since": iso_z(base["timestamp"]),
        "spot_price": last["spot_price"], "spot_change": buildup["spot_change"],
        "spot_change_pct": _pct(buildup["spot_change"], base["spot_price"]),
        "pcr_oi": pcr, "pcr_oi_since": pcr_base, "pcr_change": pcr_change, "pcr_trend": trend,
        "pcr_volume": last.get("pcr_volume"),
        "max_pain_strike": pain["max_pain_strike"], "max_pain_distance": pain["distance"],
        "max_pain_distance_pct": pain["distance_pct"],
        "atm_strike": last["atm_strike"], "atm_iv": atm_iv,
        "atm_iv_pct": None if atm_iv is None else 100.0 * atm_iv,
        "atm_straddle_price": last.get("atm_straddle_price"), "iv_skew": skew,
        "total_call_oi": last["total_call_oi"], "total_put_oi": last["total_put_oi"],
        "call_oi_change": buildup["call_oi_change"], "put_oi_change": buildup["put_oi_change"],
        "call_buildup_otm": last["call_buildup_otm"], "put_buildup_otm": last["put_buildup_otm"],
        "oi_signal": buildup["signal"],
    }


# -- the template -------------------------------------------------------------------------
def _num(x: float, digits: int = 2) -> str:
    return f"{x:,.{digits}f}"


def _signed(x: float, digits: int = 2) -> str:
    return f"{x:+,.{digits}f}"


def _minutes(f: dict[str, Any]) -> int:
    return round((_parse_ts(f["as_of"]) - _parse_ts(f["since"])).total_seconds() / 60)


_SIGNALS = {"long_buildup": "long build-up (price and open interest both rising)",
            "short_buildup": "short build-up (price falling while open interest rises)",
            "short_covering": "short covering (price rising while open interest falls)",
            "long_unwinding": "long unwinding (price and open interest both falling)",
            "neutral": "no clear build-up"}


def fact_lines(f: dict[str, Any]) -> list[str]:
    """One sentence per topic, numbers rounded for reading (the exact ones are in `facts`)."""
    lines = []
    mins = _minutes(f)
    move = f"{_signed(f['spot_change'])} ({_signed(f['spot_change_pct'])}%) over the last {mins} min" \
        if mins > 0 and f["spot_change_pct"] is not None else "no earlier snapshot to compare"
    lines.append(f"{f['product']} spot is {_num(f['spot_price'])}, {move}.")
    if f["pcr_oi"] is not None:
        side = "more put than call open interest" if f["pcr_oi"] > 1 else "more call than put open interest"
        trend = f", {f['pcr_trend']} from {_num(f['pcr_oi_since'])}" if f["pcr_trend"] and mins > 0 else ""
        lines.append(f"The put/call OI ratio is {_num(f['pcr_oi'])}{trend} ({side}).")
    where = "above" if f["max_pain_distance"] > 0 else "below" if f["max_pain_distance"] < 0 else "at"
    gap = f"{_num(abs(f['max_pain_distance']))} ({_num(abs(f['max_pain_distance_pct']))}%) {where} spot" \
        if where != "at" else "at spot"
    lines.append(f"Max pain for the {f['expiry']} expiry is {_num(f['max_pain_strike'])}, {gap}.")
    if f["atm_iv_pct"] is not None:
        skew = ""
        if f["iv_skew"] is not None:
            richer = "puts" if f["iv_skew"] > 0 else "calls"
            skew = (f", with OTM {richer} {_num(abs(f['iv_skew']) * 100)} vol points richer"
                    f" (skew {_signed(f['iv_skew'], 4)})")
        lines.append(f"ATM implied volatility is {_num(f['atm_iv_pct'])}% at the {_num(f['atm_strike'])} "
                     f"strike{skew}.")
    lines.append(f"Open interest changed by {_signed(f['call_oi_change'], 0)} calls and "
                 f"{_signed(f['put_oi_change'], 0)} puts: {_SIGNALS[f['oi_signal']]}.")
    return lines


def template_pulse(f: dict[str, Any]) -> str:
    return " ".join(fact_lines(f))
