"""The processors on the real broker: market records in, analytics out, equal to the quant
core on the same inputs; duplicates, out-of-order records, poison, a killed worker, and two
workers sharing the partitions."""
from __future__ import annotations

import base64
import re
import time

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from deltastream.clients import consumer_config
from schemas.codec import decode
from schemas.records import ChainAnalytics, DlqRecord, EnrichedUnderlying, OhlcBar, VolSurface
from schemas.topics import (ANALYTICS_CHAIN, ANALYTICS_OHLC, ANALYTICS_UNDERLYING,
                            ANALYTICS_VOL_SURFACE, DELTASTREAM_DLQ, MARKET_OPTION_CHAINS,
                            MARKET_OPTION_QUOTES, MARKET_UNDERLYING, TOPICS)
from tests.processors.harness import (Msg, Outputs, Worker, close, expected_analytics,
                                      expected_bars, expected_surface, market_messages, perturb,
                                      processor_settings, publish, unique_records)

pytestmark = pytest.mark.integration


def complete(records, bars):
    """A `done` predicate: every analytics record, every final bar, every enriched tick."""
    chains = {c.event_id for c in records[MARKET_OPTION_CHAINS]}
    ticks = {t.event_id for t in records[MARKET_UNDERLYING]}
    finals = {k for k, b in bars.items() if b["final"]}

    def missing(out: Outputs) -> dict[str, list[str]]:
        bars_now = out.latest(ANALYTICS_OHLC)
        no_final = sorted(finals - {k for k, b in bars_now.items() if b["final"]})[:10]
        return {"chains": sorted(chains - out.latest(ANALYTICS_CHAIN).keys())[:10],
                "ticks": sorted(ticks - out.latest(ANALYTICS_UNDERLYING).keys())[:10],
                "finals": no_final,
                # every version of a bar without its final: (final, partition, offset, ticks)
                "versions": {k: out.versions(ANALYTICS_OHLC, k) for k in no_final[:3]}}

    def done(out: Outputs) -> bool:
        return not any(missing(out).values())
    done.missing = missing
    return done


def check_against_quant(out: Outputs, records, bars) -> None:
    # every output is a valid record of its published schema
    for topic, model in ((ANALYTICS_CHAIN, ChainAnalytics), (ANALYTICS_OHLC, OhlcBar),
                         (ANALYTICS_UNDERLYING, EnrichedUnderlying), (ANALYTICS_VOL_SURFACE, VolSurface)):
        for msg in out.raw[topic]:
            decode(msg.value(), model)

    analytics = out.latest(ANALYTICS_CHAIN)
    assert len(analytics) == len(records[MARKET_OPTION_CHAINS])
    for chain in records[MARKET_OPTION_CHAINS]:
        got, want = analytics[chain.event_id], expected_analytics(chain)
        for field, value in want.items():
            assert close(got[field], value), (chain.event_id, field, got[field], value)

    got_bars = out.latest(ANALYTICS_OHLC)
    assert got_bars.keys() == bars.keys()  # no bar missing, none made up
    for event_id, want in bars.items():
        got = got_bars[event_id]
        for field in ("open", "high", "low", "close", "volume", "num_ticks", "final"):
            assert close(got[field], want[field]) if field != "final" else got[field] == want[field], \
                (event_id, field, got[field], want[field])
    # a final bar is the last version of its window
    finals = [b["event_id"] for b in out.by_topic[ANALYTICS_OHLC] if b["final"]]
    assert all(got_bars[e]["final"] for e in finals)

    enriched = out.latest(ANALYTICS_UNDERLYING)
    assert enriched.keys() == {t.event_id for t in records[MARKET_UNDERLYING]}
    for t in records[MARKET_UNDERLYING]:
        assert enriched[t.event_id]["price"] == t.price

    surfaces = out.latest(ANALYTICS_VOL_SURFACE)
    for product in {c.product for c in records[MARKET_OPTION_CHAINS]}:
        newest = max((s for s in surfaces.values() if s["product"] == product), key=lambda s: s["timestamp"])
        want = expected_surface([c for c in records[MARKET_OPTION_CHAINS] if c.product == product])
        assert [e["expiry"] for e in newest["expiries"]] == sorted(want)
        for e in newest["expiries"]:
            w = want[e["expiry"]]
            assert e["strikes"] == w["strikes"] and close(e["atm_iv"], w["atm_iv"])
            assert all(close(a, b) for a, b in zip(e["moneyness"], w["moneyness"]))
            assert all(close(a, b) for a, b in zip(e["ivs"], w["ivs"]))


def poison_messages(good: list[Msg]) -> list[Msg]:
    chain = orjson.loads(next(m for m in good if m.topic == MARKET_OPTION_CHAINS).value)
    chain["calls"][0]["bid"] = chain["calls"][0]["ask"] + 1  # schema: bid above ask
    return [
        Msg(MARKET_UNDERLYING, "NIFTY", b'{"product": "NIFTY", "price": 1'),  # bad JSON
        Msg(MARKET_UNDERLYING, "NIFTY", orjson.dumps(
            {"product": "NIFTY", "price": -5.0, "timestamp": "2026-11-23T04:00:01Z", "tick_id": 1})),
        Msg(MARKET_OPTION_CHAINS, f"{chain['product']}|{chain['expiry']}", orjson.dumps(chain)),
    ]


def test_feed_to_analytics_with_duplicates_out_of_order_and_poison(stack, unique, tmp_path):
    settings = processor_settings(stack, unique, tmp_path, feed_interval=10.0, processor_grace_seconds=25.0)
    clean = market_messages(settings, 120)
    poison = poison_messages(clean)
    # out of order by up to 2 snapshots (20 s < 25 s grace), ~8% re-sent, poison early on
    shuffled = perturb(clean, seed=5, max_shift=20.0, duplicates=0.08)
    messages = shuffled[:50] + poison + shuffled[50:]
    records = unique_records(clean)
    bars = expected_bars(records, grace=25.0)
    assert sum(b["final"] for b in bars.values()) > 50 and any(not b["final"] for b in bars.values())

    worker = Worker(stack, settings, tmp_path / "worker.log")
    out = Outputs(settings, f"check-{unique}")
    try:
        worker.wait_for("partitions assigned")
        publish(settings, messages)
        out.until(complete(records, bars))
        check_against_quant(out, records, bars)

        dlq = [decode(m.value(), DlqRecord) for m in out.raw[DELTASTREAM_DLQ]]
        assert sorted(base64.b64decode(d.value_b64) for d in dlq) == sorted(p.value for p in poison)
        for d in dlq:
            assert d.source_topic == settings.topic(
                MARKET_UNDERLYING if d.source_key == "NIFTY" else MARKET_OPTION_CHAINS)
            assert d.offset >= 0 and 0 <= d.partition < TOPICS[MARKET_UNDERLYING].partitions * 2
            assert d.service == settings.processor_app_id
        reasons = " | ".join(sorted(d.reason for d in dlq))
        assert "malformed JSON" in reasons and "price" in reasons and "bid" in reasons, reasons
        assert "never reached" not in worker.text()
    finally:
        out.close()
        assert worker.stop() == 0, worker.text()[-2000:]


def committed(settings, topic: str) -> int:
    """Offsets the processors' group has committed on `topic` (summed over partitions)."""
    consumer = Consumer(consumer_config(settings, settings.processor_app_id))
    try:
        parts = [TopicPartition(settings.topic(topic), p) for p in range(TOPICS[topic].partitions)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


def test_killed_worker_recovers_its_tables_and_loses_or_repeats_nothing(stack, unique, tmp_path):
    settings = processor_settings(stack, unique, tmp_path, feed_interval=10.0)
    messages = market_messages(settings, 150)
    records = unique_records(messages)
    bars = expected_bars(records, grace=10.0)
    half = len(messages) // 2

    out = Outputs(settings, f"check-{unique}")
    first = Worker(stack, settings, tmp_path / "worker1.log")
    try:
        first.wait_for("partitions assigned")
        publish(settings, messages[:half])
        # mid-stream: offsets committed (so the restart must not reprocess them) and the
        # windows open at that point hold state that exists only in the changelog
        deadline = time.monotonic() + 60
        while committed(settings, MARKET_OPTION_QUOTES) < half // 2 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert committed(settings, MARKET_UNDERLYING) > 0
        first.kill()
        publish(settings, messages[half:])
        second = Worker(stack, settings, tmp_path / "worker2.log")
        try:
            second.wait_for("partitions assigned")
            out.until(complete(records, bars))
            check_against_quant(out, records, bars)
            assert "never reached" not in second.text()  # no input lost on the way in
        finally:
            assert second.stop() == 0, second.text()[-2000:]
    finally:
        if first.proc.poll() is None:
            first.kill()
        out.close()
    # the restart did not start from scratch: ticks before the last commit came out once
    copies = {}
    for r in out.by_topic[ANALYTICS_UNDERLYING]:
        copies[r["event_id"]] = copies.get(r["event_id"], 0) + 1
    assert sum(1 for n in copies.values() if n == 1) > len(records[MARKET_UNDERLYING]) // 4


def assigned(worker: Worker, occurrence: int = -1) -> dict[str, set[int]]:
    lines = re.findall(r"partitions assigned: (.*)", worker.text())
    out = {}
    for part in lines[occurrence].split("; "):
        if part.strip() == "none":
            continue
        topic, parts = part.rsplit(" ", 1) if "[" not in part else part.split(" [", 1)
        out[topic.strip()] = {int(p) for p in re.findall(r"\d+", parts)}
    return out


def test_two_workers_split_the_partitions(stack, unique, tmp_path):
    settings = processor_settings(stack, unique, tmp_path, feed_interval=10.0)
    messages = market_messages(settings, 90)
    records = unique_records(messages)
    bars = expected_bars(records, grace=10.0)

    out = Outputs(settings, f"check-{unique}")
    a = Worker(stack, settings, tmp_path / "a.log")
    b = None
    try:
        a.wait_for("partitions assigned")
        publish(settings, messages[: len(messages) // 3])
        b = Worker(stack, settings, tmp_path / "b.log")
        b.wait_for("partitions assigned")
        a.wait_for("partitions assigned", count=2)
        mine_a, mine_b = assigned(a), assigned(b)
        for topic in (MARKET_UNDERLYING, MARKET_OPTION_QUOTES, MARKET_OPTION_CHAINS):
            name = settings.topic(topic)
            assert mine_a.get(name) and mine_b.get(name), (mine_a, mine_b)
            assert mine_a[name].isdisjoint(mine_b[name])
            assert mine_a[name] | mine_b[name] == set(range(TOPICS[topic].partitions))
        publish(settings, messages[len(messages) // 3:])
        try:
            out.until(complete(records, bars))
        except AssertionError:
            print(f"worker a:\n{a.events()}\nworker b:\n{b.events()}\nreader holes: {out.holes()}")
            raise
        check_against_quant(out, records, bars)
        assert "never reached" not in a.text() + b.text()
    finally:
        out.close()
        # one at a time: a group whose last members leave mid-rebalance wedges on Tansu
        if b is not None:
            assert b.stop() == 0, b.text()[-2000:]
        assert a.stop() == 0, a.text()[-2000:]
