"""Event-time OHLC windows per instrument, kept in the instrument's state (pure; no Faust).

Windows are tumbling, [start, start + interval) aligned to the Unix epoch (the OhlcBar
record's rule), one `quant.Bar` each. The instrument's watermark is the latest event time
it has seen; a window closes when the watermark reaches end + grace, and a record whose
window has closed is too late and changes nothing. So the result depends only on the
instrument's own records, not on how they were batched, partitioned or interleaved with
other instruments: records out of order within grace, and duplicates (see
`stream_processors.dedupe`), give the same bars.

Emission per batch: a `final: true` bar for every window that closed, and, for every open
window the batch changed, an update - at most one per `update_every` of event time per
window (0 = every batch), so an instrument quoted many times a second does not flood
analytics.ohlc; the final bar always carries everything.

Volume: underlying ticks carry none (bars have volume 0). Option quotes carry the day's
cumulative volume; a bar's volume is what traded inside it, i.e. for quotes in event-time
order, the sum of increases of the cumulative volume (a decrease is a new session, counting
from zero; the instrument's first quote adds 0). Per window that telescopes to
`cum(close) - cum(close of the previous window)` (or `cum(close)` after a reset, or
`cum(close) - cum(open)` for the first window), which is what is computed, from the first
and last cumulative volume of each window and of the previous one.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from quant import Bar
from schemas.records import INTERVAL_SECONDS

US = 1_000_000
_EPOCH = dt.datetime(1970, 1, 1)
_BAR_FIELDS = ("start", "interval", "open", "high", "low", "close", "volume", "num_ticks",
               "open_ts", "close_ts")


def iso_from_us(us: int) -> str:
    return (_EPOCH + dt.timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"


@dataclass(frozen=True)
class WindowSpec:
    intervals: tuple[str, ...]
    grace_us: int
    update_every_us: int


@dataclass(slots=True)
class Point:
    """One priced event of an instrument."""

    ts: int  # µs
    price: float
    cum_volume: int | None  # cumulative traded volume (quotes), None for ticks


def as_bar(d: dict[str, Any]) -> Bar:
    """A stored window as a `quant.Bar` (what `Windows.add` keeps, in quant's type)."""
    return Bar(**{k: d[k] for k in _BAR_FIELDS})


class Windows:
    """The OHLC part of one instrument's state: {"wm", "open": {interval: {start: bar}},
    "last": {interval: [close_ts, cum]}} (as stored, JSON-ready)."""

    def __init__(self, d: dict[str, Any] | None, spec: WindowSpec) -> None:
        self.d = d if d is not None else {"wm": None, "open": {}, "last": {}}
        self.spec = spec
        self.touched: set[tuple[str, str]] = set()
        self.late = 0

    @property
    def watermark(self) -> int | None:
        return self.d["wm"]

    def add(self, p: Point) -> None:
        # The stored bar dict is updated in place, as `quant.Bar.update` would update a Bar
        # (same fields, same rules; a Bar round trip per record and interval cost ~6 µs).
        wm = self.d["wm"]
        grace = self.spec.grace_us
        price, cum = p.price, p.cum_volume
        ts = p.ts / US
        for interval in self.spec.intervals:
            length = INTERVAL_SECONDS[interval] * US
            start = p.ts - p.ts % length
            if wm is not None and start + length + grace <= wm:
                self.late += 1
                continue  # that window is closed (final already emitted)
            windows = self.d["open"].setdefault(interval, {})
            key = str(start)
            w = windows.get(key)
            if w is None:
                windows[key] = {"start": start / US, "interval": float(INTERVAL_SECONDS[interval]),
                                "open": price, "high": price, "low": price, "close": price,
                                "volume": 0, "num_ticks": 1, "open_ts": ts, "close_ts": ts,
                                "fc": cum, "lc": cum, "u": None}
                closes = True
            else:
                opens, closes = ts < w["open_ts"], ts >= w["close_ts"]
                if opens:
                    w["open"], w["open_ts"] = price, ts
                if closes:
                    w["close"], w["close_ts"] = price, ts
                if price > w["high"]:
                    w["high"] = price
                if price < w["low"]:
                    w["low"] = price
                w["num_ticks"] += 1
                if cum is not None:
                    if opens:
                        w["fc"] = cum
                    if closes:
                        w["lc"] = cum
            if closes and cum is not None:
                # a later window's volume counts from this one's close: it changed too
                self.touched.update((interval, k) for k in windows if int(k) > start)
            self.touched.add((interval, key))
        if wm is None or p.ts > wm:
            self.d["wm"] = p.ts

    def _volume(self, interval: str, key: str, w: dict[str, Any]) -> int:
        if w["lc"] is None:
            return 0
        earlier = [k for k in self.d["open"].get(interval, {}) if int(k) < int(key)]
        if earlier:
            base = self.d["open"][interval][max(earlier, key=int)]["lc"]
        else:
            last = self.d["last"].get(interval)
            base = None if last is None else last[1]
        if base is None:
            return max(w["lc"] - w["fc"], 0)
        return w["lc"] - base if w["fc"] >= base else w["lc"]

    def emit(self, product: str, symbol: str | None) -> list[dict[str, Any]]:
        """Bars to publish after this batch: finals for windows that closed, updates for open
        windows the batch changed (throttled); closed windows leave the state."""
        out: list[dict[str, Any]] = []
        wm = self.d["wm"]
        if wm is None:
            return out
        spec = self.spec
        for interval in spec.intervals:
            windows = self.d["open"].get(interval)
            if not windows:
                continue
            length = INTERVAL_SECONDS[interval] * US
            for key in sorted(windows, key=int):
                w = windows[key]
                start = int(key)
                closed = start + length + spec.grace_us <= wm
                if closed:
                    out.append(self._record(product, symbol, interval, start, w, final=True))
                elif (interval, key) in self.touched and (
                        w["u"] is None or wm - w["u"] >= spec.update_every_us):
                    out.append(self._record(product, symbol, interval, start, w, final=False))
                    w["u"] = wm
            for key in [k for k in windows if int(k) + length + spec.grace_us <= wm]:
                w = windows.pop(key)
                last = self.d["last"].get(interval)
                if w["lc"] is not None and (last is None or w["close_ts"] >= last[0]):
                    self.d["last"][interval] = [w["close_ts"], w["lc"]]
        self.touched.clear()
        return out

    def _record(self, product: str, symbol: str | None, interval: str, start: int,
                w: dict[str, Any], final: bool) -> dict[str, Any]:
        length = INTERVAL_SECONDS[interval] * US
        start_iso = iso_from_us(start)
        return {
            "product": product, "symbol": symbol, "interval": interval,
            "open": w["open"], "high": w["high"], "low": w["low"], "close": w["close"],
            "volume": self._volume(interval, str(start), w), "num_ticks": w["num_ticks"],
            "start_time": start_iso, "end_time": iso_from_us(start + length), "final": final,
            "timestamp": iso_from_us(round(w["close_ts"] * US)),
            # schemas.records.ohlc_event_id, without the datetime round trip
            "event_id": f"{symbol or product}:{interval}:{start_iso[:19]}Z",
        }

