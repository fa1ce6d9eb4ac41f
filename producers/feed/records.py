"""Turn provider frames into the published records (plain dicts in the schema's shape).

This is the feed's hot path (tens of thousands of quotes per second), so records are built
from `ndarray.tolist()` columns with no per-record validation; tests validate the output
against the exported JSON Schemas instead.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from functools import lru_cache

from producers.feed.provider import ChainFrame, OptionSide, UnderlyingFrame
from schemas.records import format_strike

_QUOTE_COLUMNS = ("bid", "ask", "last", "volume", "open_interest", "iv",
                  "delta", "gamma", "vega", "theta", "rho")


def iso_utc(ts: dt.datetime) -> str:
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def underlying_record(frame: UnderlyingFrame, ts_iso: str) -> dict[str, Any]:
    return {"product": frame.product, "price": frame.price, "timestamp": ts_iso,
            "tick_id": frame.tick_id, "event_id": f"{frame.product}:{frame.tick_id}"}


@lru_cache(maxsize=65_536)
def _symbol(product: str, expiry: str, letter: str, strike: float) -> str:
    # Symbols repeat every snapshot: format each once.
    return f"{product}{expiry.replace('-', '')}{letter}{format_strike(strike)}"


def _side_records(frame: ChainFrame, side: OptionSide, option_type: str, expiry: str,
                  ts_iso: str, tick_id: int) -> list[dict[str, Any]]:
    letter = option_type[0]
    columns = [getattr(side, c).tolist() for c in _QUOTE_COLUMNS]
    columns[3] = side.volume.astype("int64").tolist()
    columns[4] = side.open_interest.astype("int64").tolist()
    records = []
    product = frame.product
    for strike, bid, ask, last, volume, oi, iv, delta, gamma, vega, theta, rho in zip(
            frame.strikes.tolist(), *columns):
        symbol = _symbol(product, expiry, letter, strike)
        records.append({
            "symbol": symbol, "product": product, "strike": strike, "expiry": expiry,
            "option_type": option_type, "bid": bid, "ask": ask, "last": last,
            "volume": volume, "open_interest": oi,
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
