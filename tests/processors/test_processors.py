"""The chain, surface and underlying processors on decoded records (no broker)."""
from __future__ import annotations

import orjson

from schemas.codec import decode
from schemas.records import ChainAnalytics, EnrichedUnderlying, VolSurface
from stream_processors.app import Slice
from stream_processors.decode import CHAIN, TICK, Source, decode_many
from stream_processors.processors import (SLICES, ChainProcessor, SurfaceProcessor,
                                          UnderlyingProcessor, days_to_expiry)
from stream_processors.bars import WindowSpec
from tests.processors.harness import close, expected_analytics, expected_surface, market_messages
from tests.processors.test_decode import SETTINGS

MESSAGES = market_messages(SETTINGS, 4)


def decoded(kind, topic):
    msgs = [m for m in MESSAGES if m.topic == topic]
    records, bad = decode_many(kind, [Source(topic, 0, i, m.key.encode(), m.value) for i, m in enumerate(msgs)])
    assert not bad
    return msgs, records


def test_chain_analytics_are_the_quant_core_on_the_snapshot():
    msgs, chains = decoded(CHAIN, "market.option_chains")
    p = ChainProcessor(32)
    for m, c in zip(msgs, chains):
        _, out = p.apply(c.key, None, [c])
        record = next(o.record for o in out if o.topic == "analytics.chain")
        decode(orjson.dumps(record), ChainAnalytics)
        for field, value in expected_analytics(m.record()).items():
            assert close(record[field], value), field
        assert record["event_id"] == c.event_id and record["timestamp"] == c.timestamp


def test_a_duplicate_snapshot_gives_no_second_analytics_and_only_the_newest_slice_goes_on():
    _, chains = decoded(CHAIN, "market.option_chains")
    key = chains[0].key
    mine = [c for c in chains if c.key == key]
    p = ChainProcessor(32)
    state, out = p.apply(key, None, mine + [mine[0]])
    assert sum(o.topic == "analytics.chain" for o in out) == len(mine)
    slices = [o.record for o in out if o.topic == SLICES]
    assert len(slices) == 1 and slices[0]["ts"] == max(c.ts for c in mine)
    _, again = p.apply(key, state, mine)  # redelivered after a restart: offsets already applied
    assert again == [] and p.counts["replay"] == len(mine) + 1  # + the in-batch copy (same offset)


def test_many_keys_at_once_are_each_key_on_its_own():
    _, chains = decoded(CHAIN, "market.option_chains")
    by_key: dict = {}
    for c in chains:
        by_key.setdefault(c.key, []).append(c)
    first = [(k, cs[: len(cs) // 2]) for k, cs in by_key.items()]
    second = [(k, cs[len(cs) // 2:] + cs[:1]) for k, cs in by_key.items()]  # + a replay
    one, many = ChainProcessor(32), ChainProcessor(32)
    states: dict = {}
    for groups in (first, second):
        copy = lambda k: orjson.loads(orjson.dumps(states[k])) if k in states else None  # noqa: E731
        singly = [one.apply(k, copy(k), cs) for k, cs in groups]
        together = many.apply_many([(k, copy(k), cs) for k, cs in groups])
        assert orjson.dumps(singly) == orjson.dumps(together)
        states = {k: s for (k, _), (s, _) in zip(groups, singly)}
    assert one.counts.c == many.counts.c and many.counts["replay"] == len(by_key)


def test_the_surface_holds_the_newest_slice_of_every_expiry():
    msgs, chains = decoded(CHAIN, "market.option_chains")
    product = chains[0].product
    cp, sp = ChainProcessor(32), SurfaceProcessor()
    slices = []
    for c in chains:
        if c.product == product:
            _, out = cp.apply(c.key, None, [c])
            slices += [Slice(o.record, o.record["ts"], "x", c.src) for o in out if o.topic == SLICES]
    state, out = sp.apply(product, None, slices[::-1])  # order does not matter
    surface = out[-1].record
    decode(orjson.dumps(surface), VolSurface)
    want = expected_surface([m.record() for m in msgs if m.record().product == product])
    assert [e["expiry"] for e in surface["expiries"]] == sorted(want)
    for e in surface["expiries"]:
        assert e["strikes"] == want[e["expiry"]]["strikes"]
        assert all(close(a, b) for a, b in zip(e["ivs"], want[e["expiry"]]["ivs"]))
    _, none = sp.apply(product, state, slices)  # nothing newer: no new surface
    assert none == []


def test_days_to_expiry_counts_to_the_end_of_the_expiry_day():
    assert days_to_expiry("2026-11-26", 1_795_406_400_000_000) == 3 + 20 / 24  # 04:00 on the 23rd
    assert days_to_expiry("2026-11-20", 1_795_406_400_000_000) == 0


def test_enriched_ticks_carry_the_previous_tick_and_the_day_so_far():
    _, ticks = decoded(TICK, "market.underlying")
    nifty = [t for t in ticks if t.product == "NIFTY"]
    p = UnderlyingProcessor(WindowSpec(("1m",), 0, 0), 32)
    state, out = p.apply("NIFTY", None, nifty)
    enriched = [o.record for o in out if o.topic == "analytics.underlying"]
    assert [e["event_id"] for e in enriched] == [t.event_id for t in nifty]
    assert enriched[0]["prev_price"] is None and enriched[0]["change"] is None
    prices = [t.price for t in nifty]
    for i, e in enumerate(enriched[1:], 1):
        decode(orjson.dumps(e), EnrichedUnderlying)
        assert e["prev_price"] == prices[i - 1] and close(e["change"], prices[i] - prices[i - 1])
        assert e["day_open"] == prices[0]
        assert e["day_high"] == max(prices[: i + 1]) and e["day_low"] == min(prices[: i + 1])
