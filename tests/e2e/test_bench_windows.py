"""The pipeline bench's drift view: the WebSocket p99 of each 10 s of the run."""
from __future__ import annotations

import math

from bench.bench_pipeline import Level


def test_the_p99_is_shown_per_window_so_a_drift_is_visible():
    # 100 latencies a second for 30 s, each second 1 ms slower than the one before, and a
    # last half-second that is cut short
    arrivals = [s + i / 100 for s in range(30) for i in range(100)] + [30 + i / 100 for i in range(20)]
    latencies = [10.0 + int(at) for at in arrivals]
    level = Level(offered=1000, ws_latency_ms=latencies, ws_arrival_s=arrivals)
    assert level.windows() == [19.0, 29.0, 39.0]  # the short last window is left out
    assert level.windows(seconds=15) == [24.0, 39.0]


def test_a_run_with_no_deliveries_has_no_windows():
    assert Level(offered=1000).windows() == []
    gap = Level(offered=1000, ws_latency_ms=[5.0, 7.0], ws_arrival_s=[0.5, 25.0])
    windows = gap.windows()  # a window without deliveries shows as unknown, not as zero
    assert windows[0] == 5.0 and math.isnan(windows[1]) and windows[2] == 7.0
