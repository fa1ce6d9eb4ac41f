"""Event-time OHLC in the processors equals `quant.ohlc_bars` on the same ticks, whatever the
batching, arrival order (within grace), duplicates or restarts (state round trips)."""
from __future__ import annotations

import datetime as dt
import random

import numpy as np
import orjson
from hypothesis import given, settings as hsettings, strategies as st

from quant import ohlc_bars
from schemas.codec import decode
from schemas.records import INTERVAL_SECONDS, OhlcBar, ohlc_event_id
from stream_processors.bars import US, WindowSpec
from stream_processors.decode import Quote, Source, Tick
from stream_processors.processors import QuoteProcessor, UnderlyingProcessor

T0 = 1_795_406_400  # 2026-11-23T04:00:00Z
GRACE = 30


def iso(us: int) -> str:
    return (dt.datetime(1970, 1, 1) + dt.timedelta(microseconds=us)).isoformat(timespec="microseconds") + "Z"


def ticks(times: list[int], prices: list[float]) -> list[Tick]:
    return [Tick("NIFTY", p, t, iso(t), t // 1000, f"NIFTY:{t // 1000}", Source("u", 0, i, b"NIFTY", b""))
            for i, (t, p) in enumerate(zip(times, prices))]


def run(processor, key: str, records: list, batch_sizes: list[int]) -> tuple[dict[str, dict], dict]:
    """Feed records in batches, storing the state as bytes in between (like a restart would)."""
    state, out, i, b = None, [], 0, 0
    while i < len(records):
        n = batch_sizes[b % len(batch_sizes)]
        state, o = processor.apply(key, None if state is None else orjson.loads(state), records[i:i + n])
        state = orjson.dumps(state)
        out += o
        i, b = i + n, b + 1
    return {o.record["event_id"]: o.record for o in out}, orjson.loads(state)


def expected(times_us, prices, volumes, intervals, grace=GRACE) -> dict[str, dict]:
    ts = np.array(times_us) / US
    out = {}
    for interval in intervals:
        length = INTERVAL_SECONDS[interval]
        bars = ohlc_bars(ts, prices, volumes, length)
        for i, start in enumerate(bars.start):
            begin = dt.datetime.fromtimestamp(start, dt.timezone.utc)
            out[ohlc_event_id("NIFTY" if volumes is None else SYMBOL, interval, begin)] = dict(
                open=bars.open[i], high=bars.high[i], low=bars.low[i], close=bars.close[i],
                volume=int(bars.volume[i]), num_ticks=int(bars.num_ticks[i]),
                final=bool(start + length + grace <= ts.max()))
    return out


def same(got: dict[str, dict], want: dict[str, dict]) -> None:
    assert got.keys() == want.keys()
    for k, w in want.items():
        g = got[k]
        assert (g["open"], g["high"], g["low"], g["close"], g["volume"], g["num_ticks"], g["final"]) == \
            (w["open"], w["high"], w["low"], w["close"], w["volume"], w["num_ticks"], w["final"]), k
        decode(orjson.dumps(g), OhlcBar)


def shuffle_within(items: list, ts: list[int], max_shift_us: int, rng: random.Random) -> list:
    keyed = sorted(zip((t + rng.uniform(0, max_shift_us) for t in ts), range(len(items))))
    return [items[i] for _, i in keyed]


series = st.lists(st.tuples(st.integers(1, 40), st.floats(1, 1000, allow_nan=False)), min_size=1, max_size=150)


@hsettings(max_examples=150, deadline=None)
@given(steps=series, seed=st.integers(0, 10**6), sizes=st.lists(st.integers(1, 20), min_size=1, max_size=5))
def test_underlying_bars_equal_the_batch_recomputation(steps, seed, sizes):
    rng = random.Random(seed)
    times = [int(t) for t in np.cumsum([s for s, _ in steps]) * US + T0 * US]  # distinct event times
    prices = [p for _, p in steps]
    records = ticks(times, prices)
    # out of order within grace, plus duplicates of already-sent records
    arrived = shuffle_within(records, times, (GRACE - 1) * US, rng)
    arrived += [rng.choice(arrived) for _ in range(len(arrived) // 5)]
    for i, r in enumerate(arrived):  # arrival order defines the source offsets
        r_src = r.src.__class__("u", 0, i, b"NIFTY", b"")
        arrived[i] = Tick(r.product, r.price, r.ts, r.timestamp, r.tick_id, r.event_id, r_src)
    spec = WindowSpec(("1m", "5m", "15m"), GRACE * US, 0)
    got, state = run(UnderlyingProcessor(spec, 32), "NIFTY", arrived, sizes)
    bars = {k: v for k, v in got.items()}
    same(bars_only(bars), expected(times, prices, None, ("1m", "5m", "15m")))


def bars_only(out: dict[str, dict]) -> dict[str, dict]:
    return {k: v for k, v in out.items() if "interval" in v}


SYMBOL = "NIFTY20261126C24000"


def quotes(times: list[int], prices: list[float], cum: list[int]) -> list[Quote]:
    return [Quote(SYMBOL, "NIFTY", "2026-11-26", p, v, t, iso(t), f"{SYMBOL}:{t // 1000}",
                  Source("q", 0, i, SYMBOL.encode(), b""))
            for i, (t, p, v) in enumerate(zip(times, prices, cum))]


@hsettings(max_examples=150, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(1, 40), st.floats(0, 500, allow_nan=False), st.integers(0, 50)),
                      min_size=1, max_size=120),
       reset_at=st.integers(0, 200), seed=st.integers(0, 10**6),
       sizes=st.lists(st.integers(1, 20), min_size=1, max_size=5))
def test_option_bars_count_traded_volume_from_the_cumulative_volume(steps, reset_at, seed, sizes):
    rng = random.Random(seed)
    times = [int(t) for t in np.cumsum([s for s, _, _ in steps]) * US + T0 * US]
    prices = [p for _, p, _ in steps]
    cum, total = [], 1000  # the first quote arrives mid-session
    for i, (_, _, traded) in enumerate(steps):
        total = traded if i == reset_at else total + traded  # a new session starts from zero
        cum.append(total)
    # the reference: increments in event-time order (a decrease restarts from zero)
    inc = [0] + [b - a if b >= a else b for a, b in zip(cum, cum[1:])]
    # a reset only ever happens at a window boundary (sessions start on the minute)
    if 0 < reset_at < len(times):
        shift = (60 * US - (times[reset_at] - T0 * US) % (60 * US)) % (60 * US)
        times = times[:reset_at] + [t + shift for t in times[reset_at:]]
    arrived = shuffle_within(quotes(times, prices, cum), times, (GRACE - 1) * US, rng)
    arrived = [Quote(q.symbol, q.product, q.expiry, q.last, q.volume, q.ts, q.timestamp, q.event_id,
                     Source("q", 0, i, SYMBOL.encode(), b"")) for i, q in enumerate(arrived)]
    spec = WindowSpec(("1m",), GRACE * US, 0)
    got, _ = run(QuoteProcessor(spec, 32), SYMBOL, arrived, sizes)
    same(got, expected(times, prices, np.array(inc, float), ("1m",)))


def test_a_record_later_than_grace_changes_nothing_and_is_counted():
    times = [T0 * US + s * US for s in (0, 10, 200, 20)]  # the last is 180 s late (grace 30 s)
    p = UnderlyingProcessor(WindowSpec(("1m",), GRACE * US, 0), 32)
    got, state = run(p, "NIFTY", ticks(times, [10.0, 11.0, 12.0, 99.0]), [1])
    first = got[f"NIFTY:1m:{iso(T0 * US)[:19]}Z"]
    assert first["final"] and first["high"] == 11.0 and first["num_ticks"] == 2
    assert p.counts["late"] == 1


def test_updates_of_an_open_bar_are_throttled_by_event_time_but_the_final_bar_is_complete():
    times = [T0 * US + s * US // 4 for s in range(200)]  # four ticks a second for 50 s
    p = UnderlyingProcessor(WindowSpec(("1m",), GRACE * US, 5 * US), 32)
    state, updates = None, []
    for t in ticks(times, [float(100 + i % 7) for i in range(200)]):
        state, out = p.apply("NIFTY", state, [t])
        updates += [o.record for o in out if o.topic == "analytics.ohlc"]
    assert 8 <= len(updates) <= 12  # one per 5 s of event time, not 200
    closing = ticks([T0 * US + 100 * US], [50.0])[0]
    closing.src = Source("u", 0, 999, b"NIFTY", b"")
    _, out = p.apply("NIFTY", state, [closing])
    final = next(o.record for o in out if o.record.get("final"))
    assert final["num_ticks"] == 200 and final["low"] == 100.0 and final["high"] == 106.0


@given(st.lists(st.tuples(st.integers(0, 3 * 60 * US), st.floats(1, 1000), st.integers(0, 10_000)),
                min_size=1, max_size=60))
@hsettings(max_examples=60, deadline=None)
def test_windows_update_their_bars_in_place_exactly_as_quant_bar_update_does(points):
    """`Windows.add` edits the stored bar dicts in place: same fields and values as a
    `quant.Bar` given the same records in the same order (no grace: nothing is late)."""
    from quant import Bar
    from stream_processors.bars import Point, Windows, as_bar

    spec = WindowSpec(("1m", "5m"), grace_us=10 * 60 * US, update_every_us=0)
    windows = Windows(None, spec)
    want: dict[tuple[str, str], Bar] = {}
    for ts, price, cum in points:
        windows.add(Point(ts, price, cum))
        for interval in spec.intervals:
            length = INTERVAL_SECONDS[interval] * US
            start = ts - ts % length
            bar = want.setdefault((interval, str(start)), Bar(start=start / US, interval=float(length // US)))
            bar.update(ts / US, price)
    got = {(i, k): as_bar(w) for i, ws in windows.d["open"].items() for k, w in ws.items()}
    assert got == want
    stored = orjson.loads(orjson.dumps(windows.d))  # JSON-ready, as the changelog needs
    assert stored == windows.d
