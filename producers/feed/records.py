"""Turn provider frames into the published records (plain dicts in the schema's shape).

This is the feed's hot path (tens of thousands of quotes per second), so records are built
from `ndarray.tolist()` columns with no per-record validation; tests validate the output
against the exported JSON Schemas instead.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from producers.feed.provider import ChainFrame, OptionSide, UnderlyingFrame
from schemas.records import format_strike

_QUOTE_COLUMNS = ("bid", "ask", "last", "volume", "open_interest", "iv",
                  "delta", "gamma", "vega", "theta", "rho")


def iso_utc(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def underlying_record(frame: UnderlyingFrame, ts_iso: str) -> dict[str, Any]:
    return {"product": frame.product, "price": frame.price, "timestamp": ts_iso,
            "tick_id": frame.tick_id, "event_id": f"{frame.product}:{frame.tick_id}"}


def _side_records(frame: ChainFrame, side: OptionSide, option_type: str, expiry: str,
                  ts_iso: str, tick_id: int) -> list[dict[str, Any]]:
    letter = option_type[0]
    ymd = expiry.replace("-", "")
    columns = [getattr(side, c).tolist() for c in _QUOTE_COLUMNS]
    records = []
    for strike, bid, ask, last, volume, oi, iv, delta, gamma, vega, theta, rho in zip(
            frame.strikes.tolist(), *columns):
        symbol = f"{frame.product}{ymd}{letter}{format_strike(strike)}"
        records.append({
            "symbol": symbol, "product": frame.product, "strike": strike, "expiry": expiry,
            "option_type": option_type, "bid": bid, "ask": ask, "last": last,
            "volume": int(volume), "open_interest": int(oi),
            "iv": None if iv != iv else iv,  # NaN → null: the vol is unknown, not zero
            "delta": delta, "gamma": gamma, "vega": vega, "theta": theta, "rho": rho,
            "timestamp": ts_iso, "event_id": f"{symbol}:{tick_id}",
        })
    return records


def chain_records(frame: ChainFrame, ts_iso: str, tick_id: int) -> tuple[list[dict], list[dict], dict]:
    """(call quotes, put quotes, chain snapshot) for one chain frame."""
    expiry = frame.expiry.isoformat()
    calls = _side_records(frame, frame.calls, "CALL", expiry, ts_iso, tick_id)
    puts = _side_records(frame, frame.puts, "PUT", expiry, ts_iso, tick_id)
    chain = {"product": frame.product, "expiry": expiry, "spot_price": frame.spot,
             "strikes": frame.strikes.tolist(), "calls": calls, "puts": puts,
             "timestamp": ts_iso, "event_id": f"{frame.product}:{expiry}:{tick_id}"}
    return calls, puts, chain
