"""Small derivations over stored analytics (no I/O): combined PCR, max-pain distance, and
the OI build-up classification."""
from __future__ import annotations

from collections import OrderedDict
from typing import Any


def combined_pcr(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per snapshot time: put OI / call OI summed over its expiries (None when no call OI)."""
    by_time: OrderedDict[Any, dict[str, Any]] = OrderedDict()
    for p in points:
        row = by_time.setdefault(p["timestamp"], {"timestamp": p["timestamp"], "total_call_oi": 0,
                                                  "total_put_oi": 0, "expiries": 0})
        row["total_call_oi"] += p["total_call_oi"]
        row["total_put_oi"] += p["total_put_oi"]
        row["expiries"] += 1
    for row in by_time.values():
        row["pcr_oi"] = row["total_put_oi"] / row["total_call_oi"] if row["total_call_oi"] else None
    return sorted(by_time.values(), key=lambda r: r["timestamp"])


def max_pain_row(a: dict[str, Any]) -> dict[str, Any]:
    distance = a["max_pain_strike"] - a["spot_price"]
    return {"expiry": a["expiry"], "timestamp": a["timestamp"], "max_pain_strike": a["max_pain_strike"],
            "spot_price": a["spot_price"], "distance": distance,
            "distance_pct": 100 * distance / a["spot_price"]}


def buildup_signal(spot_change: float, oi_change: int) -> str:
    if spot_change == 0 or oi_change == 0:
        return "neutral"
    if oi_change > 0:
        return "long_buildup" if spot_change > 0 else "short_buildup"
    return "short_covering" if spot_change > 0 else "long_unwinding"


def oi_buildup_row(base: dict[str, Any], last: dict[str, Any]) -> dict[str, Any]:
    call_change = last["total_call_oi"] - base["total_call_oi"]
    put_change = last["total_put_oi"] - base["total_put_oi"]
    spot_change = last["spot_price"] - base["spot_price"]
    return {"expiry": last["expiry"], "since": base["timestamp"], "timestamp": last["timestamp"],
            "spot_price": last["spot_price"], "spot_change": spot_change,
            "total_call_oi": last["total_call_oi"], "total_put_oi": last["total_put_oi"],
            "call_oi_change": call_change, "put_oi_change": put_change,
            "call_buildup_otm": last["call_buildup_otm"], "put_buildup_otm": last["put_buildup_otm"],
            "signal": buildup_signal(spot_change, call_change + put_change)}
