"""OHLC bars on EVENT time, in batch (numpy) and incrementally (streaming).

Timestamps are epoch SECONDS as floats (what `datetime.timestamp()` gives; microsecond
resolution is exact for present-day dates). A tick at ts belongs to the bucket starting at
`bucket_start(ts, interval)` = the largest multiple of `interval` <= ts, so windows are
[start, start + interval), aligned to the Unix epoch like the OhlcBar record.

Open and close are decided by event timestamp, not arrival order: open = price of the
earliest tick, close = price of the latest; ticks with equal timestamps keep their input
(arrival) order, so among them the first is the open candidate and the last the close. The
batch `ohlc_bars` and the streaming `Bar` agree on this, whatever order the ticks arrive in.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from quant.black_scholes import FloatArray


def bucket_start(ts: ArrayLike, interval: float) -> FloatArray | float:
    """Start of the bucket containing ts: ts - (ts mod interval), exact in floating point
    (fmod is exact and the difference is a representable multiple of the interval)."""
    if interval <= 0:
        raise ValueError("interval must be positive")
    if np.ndim(ts) == 0:
        t = float(ts)  # type: ignore[arg-type]
        return t - (t % interval)
    arr = np.asarray(ts, dtype=np.float64)
    return arr - np.mod(arr, interval)


class OhlcBars(NamedTuple):
    """Bars ordered by bucket start; one entry per non-empty bucket."""

    start: FloatArray
    open: FloatArray
    high: FloatArray
    low: FloatArray
    close: FloatArray
    volume: FloatArray
    num_ticks: np.ndarray  # int64


def ohlc_bars(timestamps: ArrayLike, prices: ArrayLike, volumes: ArrayLike | None,
              interval: float) -> OhlcBars:
    """Aggregate ticks into bars of `interval` seconds (see the module docstring).

    Ticks with a non-finite timestamp or price are dropped; `volumes=None` means 0 each.
    Cost: one stable argsort plus a few reductions, O(n log n).
    """
    ts = np.asarray(timestamps, dtype=np.float64).ravel()
    px = np.asarray(prices, dtype=np.float64).ravel()
    vol = np.zeros_like(ts) if volumes is None else np.asarray(volumes, dtype=np.float64).ravel()
    if not ts.size == px.size == vol.size:
        raise ValueError("timestamps, prices and volumes must have the same length")
    keep = np.isfinite(ts) & np.isfinite(px)
    if not keep.all():
        ts, px, vol = ts[keep], px[keep], vol[keep]
    if ts.size == 0:
        empty = np.empty(0)
        return OhlcBars(empty, empty, empty, empty, empty, empty, np.empty(0, dtype=np.int64))
    order = np.argsort(ts, kind="stable")  # stable: equal timestamps keep arrival order
    ts, px, vol = ts[order], px[order], vol[order]
    buckets = bucket_start(ts, interval)
    first = np.flatnonzero(np.concatenate(([True], buckets[1:] != buckets[:-1])))
    last = np.concatenate((first[1:], [ts.size])) - 1
    return OhlcBars(
        start=buckets[first],
        open=px[first],
        high=np.maximum.reduceat(px, first),
        low=np.minimum.reduceat(px, first),
        close=px[last],
        volume=np.add.reduceat(vol, first),
        num_ticks=(last - first + 1).astype(np.int64),
    )


@dataclass
class Bar:
    """One bucket's bar, updated tick by tick; late (out-of-order) ticks amend it correctly.

    `open_ts`/`close_ts` remember the timestamps of the open and close ticks: a late tick
    older than the open becomes the open, one at or after the close becomes the close (at an
    equal timestamp the later arrival wins the close and loses the open, as in the batch).
    A new Bar is empty (num_ticks = 0, prices NaN) until its first update.
    """

    start: float
    interval: float
    open: float = math.nan
    high: float = math.nan
    low: float = math.nan
    close: float = math.nan
    volume: float = 0
    num_ticks: int = 0
    open_ts: float = math.inf
    close_ts: float = -math.inf

    @classmethod
    def for_tick(cls, ts: float, price: float, volume: float = 0, *, interval: float) -> Bar:
        """A bar holding just this tick, in the bucket that contains ts."""
        bar = cls(start=float(bucket_start(ts, interval)), interval=float(interval))
        bar.update(ts, price, volume)
        return bar

    @property
    def end(self) -> float:
        return self.start + self.interval

    def contains(self, ts: float) -> bool:
        return self.start <= ts < self.start + self.interval

    def update(self, ts: float, price: float, volume: float = 0) -> Bar:
        """Add one tick (in any arrival order); returns self for chaining."""
        if not self.contains(ts):
            raise ValueError(f"tick at {ts} is outside the bar [{self.start}, {self.end})")
        if self.num_ticks == 0:
            self.open = self.high = self.low = self.close = price
            self.open_ts = self.close_ts = ts
        else:
            if ts < self.open_ts:
                self.open, self.open_ts = price, ts
            if ts >= self.close_ts:
                self.close, self.close_ts = price, ts
            if price > self.high:
                self.high = price
            if price < self.low:
                self.low = price
        self.volume += volume
        self.num_ticks += 1
        return self

    def merge(self, other: Bar) -> Bar:
        """A new bar = self and other combined; other's ticks count as arriving later."""
        if (self.start, self.interval) != (other.start, other.interval):
            raise ValueError("can only merge bars of the same bucket and interval")
        if other.num_ticks == 0:
            return replace(self)
        if self.num_ticks == 0:
            return replace(other)
        first_open = other.open_ts < self.open_ts
        last_close = other.close_ts >= self.close_ts
        return replace(
            self,
            open=other.open if first_open else self.open,
            open_ts=other.open_ts if first_open else self.open_ts,
            close=other.close if last_close else self.close,
            close_ts=other.close_ts if last_close else self.close_ts,
            high=max(self.high, other.high),
            low=min(self.low, other.low),
            volume=self.volume + other.volume,
            num_ticks=self.num_ticks + other.num_ticks,
        )
