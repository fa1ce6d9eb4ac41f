"""OHLC on event time: batch bars vs a naive recomputation; streaming bars in any arrival
order equal the batch."""
from __future__ import annotations

import math
from collections import defaultdict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import Bar, bucket_start, ohlc_bars

INTERVALS = [1.0, 60.0, 300.0, 900.0]

ticks = st.lists(
    st.tuples(
        # few distinct timestamps (many ties), around a present-day epoch, incl. boundaries
        st.one_of(st.integers(0, 40).map(lambda k: 1_764_000_000.0 + 30.0 * k),
                  st.floats(1_764_000_000.0, 1_764_001_200.0)),
        st.floats(0.01, 1e5),
        st.integers(0, 1000),
    ),
    min_size=0, max_size=80)


def naive_bars(rows, interval):
    """By hand: group by floor(ts / interval), then sort each group by (ts, arrival)."""
    groups = defaultdict(list)
    for arrival, (ts, price, volume) in enumerate(rows):
        groups[math.floor(ts / interval) * interval].append((ts, arrival, price, volume))
    out = []
    for start in sorted(groups):
        g = sorted(groups[start])
        prices = [p for _, _, p, _ in g]
        out.append((start, g[0][2], max(prices), min(prices), g[-1][2], sum(v for *_, v in g), len(g)))
    return out


def as_rows(bars):
    return [(s, o, h, lo, c, v, n) for s, o, h, lo, c, v, n in zip(*bars)]


@settings(max_examples=300, deadline=None)
@given(ticks, st.sampled_from(INTERVALS))
def test_batch_bars_equal_naive_recomputation(rows, interval):
    ts = [r[0] for r in rows]
    bars = ohlc_bars(ts, [r[1] for r in rows], [r[2] for r in rows], interval)
    assert as_rows(bars) == naive_bars(rows, interval)
    assert np.all(np.diff(bars.start) > 0)


@settings(max_examples=300, deadline=None)
@given(ticks, st.sampled_from(INTERVALS), st.randoms(use_true_random=False))
def test_streaming_bars_in_any_arrival_order_equal_the_batch(rows, interval, rnd):
    arrivals = rows[:]
    rnd.shuffle(arrivals)  # out-of-order delivery: late ticks amend open/close/high/low
    live: dict[float, Bar] = {}
    for ts, price, volume in arrivals:
        start = bucket_start(ts, interval)
        if start not in live:
            live[start] = Bar(start=start, interval=interval)
        live[start].update(ts, price, volume)
    batch = ohlc_bars(*zip(*arrivals), interval) if arrivals else ohlc_bars([], [], [], interval)
    streamed = [(b.start, b.open, b.high, b.low, b.close, b.volume, b.num_ticks)
                for b in sorted(live.values(), key=lambda b: b.start)]
    assert streamed == as_rows(batch)

    # merging partial bars (first half of the arrivals, then the rest) gives the same bar
    half = len(arrivals) // 2
    for start, bar in live.items():
        a, b = Bar(start, interval), Bar(start, interval)
        for i, (ts, price, volume) in enumerate(arrivals):
            if bucket_start(ts, interval) == start:
                (a if i < half else b).update(ts, price, volume)
        assert a.merge(b) == bar


def test_bucket_start_is_exact_at_boundaries():
    assert bucket_start(120.0, 60) == 120.0
    assert bucket_start(np.nextafter(120.0, 0.0), 60) == 60.0
    big = 1_764_000_060.0
    assert bucket_start(np.nextafter(big, 0.0), 60) == big - 60
    assert bucket_start(big, 60) == big
    arr = np.array([np.nextafter(big, 0.0), big, big + 59.999999])
    np.testing.assert_array_equal(bucket_start(arr, 60), [big - 60, big, big])
    assert bucket_start(-1.0, 60) == -60.0
    with pytest.raises(ValueError):
        bucket_start(1.0, 0)


def test_late_tick_amends_open_and_ties_follow_arrival_order():
    bar = Bar.for_tick(100.0, 10.0, 1, interval=60)
    bar.update(110.0, 12.0, 1)
    bar.update(95.0, 9.0, 1)        # late: earlier than the open -> new open, new low
    assert (bar.start, bar.open, bar.close, bar.low, bar.high) == (60.0, 9.0, 12.0, 9.0, 12.0)
    bar.update(110.0, 13.0, 2)      # same time as the close, arrived later -> new close
    bar.update(95.0, 8.5, 0)        # same time as the open, arrived later -> not the open
    assert (bar.open, bar.close, bar.low, bar.volume, bar.num_ticks) == (9.0, 13.0, 8.5, 5, 5)
    with pytest.raises(ValueError):
        bar.update(120.0, 1.0)      # belongs to the next bucket
    with pytest.raises(ValueError):
        bar.merge(Bar(120.0, 60.0))
    assert bar.merge(Bar(60.0, 60.0)) == bar and Bar(60.0, 60.0).merge(bar) == bar


def test_non_finite_ticks_are_dropped():
    bars = ohlc_bars([0.0, np.nan, 1.0, 2.0], [1.0, 2.0, np.nan, 3.0], None, 60)
    assert as_rows(bars) == [(0.0, 1.0, 3.0, 1.0, 3.0, 0.0, 2)]
    assert ohlc_bars([], [], [], 60).start.size == 0
