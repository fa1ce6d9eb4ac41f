"""The Redis sink against the real servers: latest values, sets, live envelopes with contiguous
per-room seq, and a redelivered batch recognised by the offsets stored with the data."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import defaultdict

import orjson
from confluent_kafka import Consumer, Producer, TopicPartition

from deltastream.clients import (EMBEDDED_FETCH_WAIT_MS, EMBEDDED_LIVE_FETCH_WAIT_MS, consumer_config,
                                  producer_config, redis_client)
from deltastream.settings import Settings
from schemas.codec import encode, headers
from schemas.records import ChainAnalytics, EnrichedUnderlying, OhlcBar
from schemas.topics import (ANALYTICS_CHAIN, ANALYTICS_OHLC, ANALYTICS_UNDERLYING,
                            MARKET_OPTION_CHAINS, MARKET_UNDERLYING)
from sinks.base import Batch, SinkRecord
from sinks.decode import parse_time
from sinks.redis_sink import CHUNK_RECORDS, LIVE_TOPICS, REDIS_TOPICS, ROUTES, STATE_TOPICS, RedisSink
from sinks.run import redis_lanes, run_lanes, run_redis_sink
from tests.sinks.conftest import SinkThread, T0, feed, read_topics, wait_until

CHANNELS = ("enriched:underlying", "enriched:chain_summary", "enriched:option_chain")


def analytics_for(settings, ticks, chains) -> tuple[list[EnrichedUnderlying], list[ChainAnalytics]]:
    """What the processors would derive: an enriched tick per tick, analytics per chain."""
    enriched, session = [], {}  # product -> (open, high, low, previous price)
    for t in ticks:
        price = t["price"]
        day_open, high, low, prev = session.get(t["product"], (price, price, price, None))
        high, low = max(high, price), min(low, price)
        session[t["product"]] = (day_open, high, low, price)
        enriched.append(EnrichedUnderlying(
            product=t["product"], price=price, prev_price=prev,
            change=None if prev is None else price - prev,
            change_pct=None if prev is None else 100 * (price - prev) / prev,
            day_open=day_open, day_high=high, day_low=low, timestamp=t["timestamp"], tick_id=t["tick_id"]))
    summaries = []
    for c in chains:
        call_oi = sum(q["open_interest"] for q in c["calls"])
        put_oi = sum(q["open_interest"] for q in c["puts"])
        summaries.append(ChainAnalytics(
            product=c["product"], expiry=c["expiry"], spot_price=c["spot_price"],
            pcr_oi=put_oi / call_oi if call_oi else None, pcr_volume=None, atm_strike=c["strikes"][0],
            atm_iv=None, atm_straddle_price=None, max_pain_strike=c["strikes"][0], total_call_oi=call_oi,
            total_put_oi=put_oi, call_buildup_otm=0, put_buildup_otm=0, iv_skew=None,
            timestamp=c["timestamp"], event_id=f"{c['event_id']}:analytics"))
    return enriched, summaries


def produce(settings, topic: str, records) -> None:
    producer = Producer(producer_config(settings))
    for r in records:
        producer.produce(settings.topic(topic), encode(r), r.key(), headers=headers(r.SCHEMA))
    assert producer.flush(30) == 0


class Subscriber(threading.Thread):
    """Collects every envelope published on the sink's channels."""

    def __init__(self, settings) -> None:
        super().__init__(daemon=True)
        self.client = redis_client(settings)
        self.pubsub = self.client.pubsub(ignore_subscribe_messages=True)
        self.pubsub.subscribe(*CHANNELS)
        self.pubsub.get_message(timeout=1)  # wait for the subscription to be in place
        self.messages: list[tuple[str, dict]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            msg = self.pubsub.get_message(timeout=0.1)
            if msg is not None:
                self.messages.append((msg["channel"].decode(), orjson.loads(msg["data"])))

    def close(self) -> None:
        self.done.set()
        self.join(5)
        self.pubsub.close()
        self.client.close()


def offsets_done(settings, group: str, expected: int) -> bool:
    stored = redis_client(settings).hgetall(f"sink:offsets:{group}")
    return sum(int(v) + 1 for v in stored.values()) >= expected


def test_latest_values_sets_and_envelopes_with_contiguous_seq_per_room(sink_settings, unique):
    settings = sink_settings
    subscriber = Subscriber(settings)
    subscriber.start()
    stats = feed(settings.model_copy(update={"feed_publish_quotes": False}), snapshots=5)
    raw = read_topics(settings, [MARKET_UNDERLYING, MARKET_OPTION_CHAINS], stats.produced)
    ticks = sorted((orjson.loads(m.value()) for m in raw if m.topic().endswith(MARKET_UNDERLYING)),
                   key=lambda d: d["timestamp"])
    chains = sorted((orjson.loads(m.value()) for m in raw if m.topic().endswith(MARKET_OPTION_CHAINS)),
                    key=lambda d: d["timestamp"])
    enriched, summaries = analytics_for(settings, ticks, chains)
    produce(settings, ANALYTICS_UNDERLYING, enriched)
    produce(settings, ANALYTICS_CHAIN, summaries)
    total = stats.produced + len(enriched) + len(summaries)

    group = f"redis-{unique}"
    sink = SinkThread(run_redis_sink, settings, group)
    try:
        wait_until(lambda: offsets_done(settings, group, total), 60, "the sink to apply everything")
    finally:
        assert sink.stop() == 0
    time.sleep(0.3)
    subscriber.close()
    r = redis_client(settings)

    # Latest values: the last record per key, as published; the enriched tick wins its tie.
    for product in settings.products:
        last = [e for e in enriched if e.product == product][-1]
        assert orjson.loads(r.get(f"latest:underlying:{product}")) == orjson.loads(encode(last))
        assert 0 < r.ttl(f"latest:underlying:{product}") <= settings.redis_latest_ttl_seconds
    for chain in chains:
        last_chain = [c for c in chains if (c["product"], c["expiry"]) == (chain["product"], chain["expiry"])][-1]
        assert orjson.loads(r.get(f"latest:chain:{chain['product']}:{chain['expiry']}")) == last_chain
    for s in summaries:
        last_summary = [x for x in summaries if (x.product, x.expiry) == (s.product, s.expiry)][-1]
        assert orjson.loads(r.get(f"latest:analytics:{s.product}:{s.expiry.isoformat()}")) == \
            orjson.loads(encode(last_summary))
    assert {p.decode() for p in r.smembers("products")} == set(settings.products)
    for product in settings.products:
        expiries = sorted({c["expiry"] for c in chains if c["product"] == product})
        listed = r.zrange(f"expiries:{product}", 0, -1, withscores=True)
        assert [(e.decode(), int(score)) for e, score in listed] == [
            (e, (dt.date.fromisoformat(e) - dt.date(1970, 1, 1)).days) for e in expiries]

    # Envelopes: one per room, seq contiguous from 1, one epoch per room, the record as data.
    by_room: dict[str, list[dict]] = defaultdict(list)
    for channel, env in subscriber.messages:
        assert set(env) == {"room", "seq", "epoch", "event", "data"}
        by_room[env["room"]].append(env)
    expected_rooms = {"general": len(enriched) + len(summaries)}
    for product in settings.products:
        expected_rooms[f"product:{product}"] = (sum(e.product == product for e in enriched)
                                                + sum(s.product == product for s in summaries))
        expected_rooms[f"chain:{product}"] = sum(c["product"] == product for c in chains)
    assert {room: len(envs) for room, envs in by_room.items()} == expected_rooms
    for room, envs in by_room.items():
        assert [e["seq"] for e in envs] == list(range(1, len(envs) + 1)), room
        assert len({e["epoch"] for e in envs}) == 1
        assert r.get(f"seq:{room}") == str(len(envs)).encode()
        assert r.get(f"epoch:{room}").decode() == envs[0]["epoch"]
        history = r.xrange(f"history:{room}")
        assert [entry_id.decode() for entry_id, _ in history] == [f"{e['seq']}-0" for e in envs]
        assert [orjson.loads(fields[b"env"]) for _, fields in history] == envs
    chain_events = by_room["chain:NIFTY"]
    assert {e["event"] for e in chain_events} == {"chain_update"}
    for expiry in {c["expiry"] for c in chains}:  # in order per partition (product|expiry)
        assert [e["data"] for e in chain_events if e["data"]["expiry"] == expiry] == [
            c for c in chains if (c["product"], c["expiry"]) == ("NIFTY", expiry)]
    assert {e["event"] for e in by_room["general"]} == {"underlying_update", "chain_summary"}


def record(topic: str, offset: int, value: bytes, partition: int = 0) -> SinkRecord:
    data = orjson.loads(value)
    times = {f: parse_time(data[f], f) for f in ("timestamp", "start_time", "end_time") if f in data}
    return SinkRecord(topic, f"t.{topic}", partition, offset, None, value, data, times)


def test_a_redelivered_batch_is_skipped_by_the_offsets_stored_with_it(sink_settings, unique):
    settings = sink_settings
    r = redis_client(settings)
    sink = RedisSink(settings, f"direct-{unique}")
    sink.start()
    ticks = [EnrichedUnderlying(product="NIFTY", price=100.0 + i, prev_price=None, change=None, change_pct=None,
                                day_open=100.0, day_high=200.0, day_low=100.0,
                                timestamp=T0 + dt.timedelta(seconds=i), tick_id=i) for i in range(10)]
    records = [record(ANALYTICS_UNDERLYING, i, encode(t)) for i, t in enumerate(ticks)]
    pubsub = r.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe("enriched:underlying")
    pubsub.get_message(timeout=1)

    sink.write(Batch(records[:6], {("t.analytics.underlying", 0): 5}))
    assert sink.stats.published == 12 and r.get("seq:general") == b"6"
    # A crash before the Kafka commit: the same batch again, and a batch overlapping it.
    sink.write(Batch(records[:6], {("t.analytics.underlying", 0): 5}))
    assert sink.stats.published == 12 and sink.stats.skipped == 6 and r.get("seq:general") == b"6"
    sink.write(Batch(records[3:], {("t.analytics.underlying", 0): 9}))
    assert sink.stats.published == 20 and sink.stats.skipped == 9 and r.get("seq:general") == b"10"
    seen = []
    while (msg := pubsub.get_message(timeout=0.5)) is not None:
        seen.append(orjson.loads(msg["data"]))
    general = [e for e in seen if e["room"] == "general"]
    assert [e["seq"] for e in general] == list(range(1, 11))
    assert [e["data"]["tick_id"] for e in general] == list(range(10))
    assert r.hget(f"sink:offsets:direct-{unique}", "t.analytics.underlying:0") == b"9"


def test_a_restarted_sink_skips_what_redis_already_holds(sink_settings, unique, caplog):
    """The sink crashed after its write and before the Kafka commit (simulated by rewinding
    the group's committed offsets): on assignment it resumes from the offsets in Redis."""
    caplog.set_level(logging.INFO, logger="sinks.runner")
    settings = sink_settings
    stats = feed(settings.model_copy(update={"feed_publish_quotes": False}), snapshots=3)
    ticks = [orjson.loads(m.value()) for m in read_topics(settings, [MARKET_UNDERLYING], 6)]
    enriched, _ = analytics_for(settings, sorted(ticks, key=lambda d: d["timestamp"]), [])
    produce(settings, ANALYTICS_UNDERLYING, enriched)
    total = stats.produced + len(enriched)
    group = f"redis-restart-{unique}"
    sink = SinkThread(run_redis_sink, settings, group)
    wait_until(lambda: offsets_done(settings, group, total), 60, "the first run")
    assert sink.stop() == 0
    r = redis_client(settings)
    seq_before = {k: r.get(k) for k in r.keys("seq:*")}
    latest_before = r.get("latest:underlying:NIFTY")

    # Rewind both lanes' groups to the beginning (as if no commit had reached Kafka).
    for lane_group, topics in ((group, LIVE_TOPICS), (f"{group}-state", STATE_TOPICS)):
        rewind = Consumer(consumer_config(settings, lane_group))
        tps = [TopicPartition(settings.topic(t), p) for t in topics
               for p in rewind.list_topics(settings.topic(t), timeout=10).topics[settings.topic(t)].partitions]
        rewind.commit(offsets=[TopicPartition(tp.topic, tp.partition, 0) for tp in tps], asynchronous=False)
        rewind.close()

    subscriber = Subscriber(settings)
    subscriber.start()
    again = SinkThread(run_redis_sink, settings, group)
    more = EnrichedUnderlying(product="NIFTY", price=123.0, prev_price=None, change=None, change_pct=None,
                              day_open=123.0, day_high=123.0, day_low=123.0,
                              timestamp=T0 + dt.timedelta(minutes=5), tick_id=10**13)
    produce(settings, ANALYTICS_UNDERLYING, [more])
    wait_until(lambda: len(subscriber.messages) >= 2, 30, "the new tick's envelopes")
    time.sleep(0.5)
    assert again.stop() == 0
    subscriber.close()
    # Only the new record was published, with the next seq of each room.
    assert [(env["room"], env["seq"]) for _, env in subscriber.messages] == [
        ("general", int(seq_before[b"seq:general"]) + 1),
        ("product:NIFTY", int(seq_before[b"seq:product:NIFTY"]) + 1)]
    assert orjson.loads(r.get("latest:underlying:NIFTY"))["price"] == 123.0
    assert latest_before is not None
    assert "skipping ahead of the committed offsets" in caplog.text


def test_latest_keys_keep_the_newest_record(sink_settings, unique):
    """A raw tick does not replace the enriched tick of the same or a later time; a late
    update of an older OHLC window does not replace the newer window's bar."""
    settings = sink_settings
    r = redis_client(settings)
    sink = RedisSink(settings, f"order-{unique}")
    sink.start()

    def tick(seconds: int, enriched: bool) -> bytes:
        base = {"product": "SPY", "price": 500.0 + seconds, "tick_id": seconds,
                "timestamp": (T0 + dt.timedelta(seconds=seconds)).isoformat().replace("+00:00", "Z")}
        if enriched:
            base |= {"prev_price": None, "change": None, "change_pct": None, "day_open": 500.0,
                     "day_high": 600.0, "day_low": 400.0}
        return orjson.dumps(base | {"event_id": f"SPY:{seconds}"})

    sink.write(Batch([record(ANALYTICS_UNDERLYING, 0, tick(10, True))], {}))
    sink.write(Batch([record(MARKET_UNDERLYING, 0, tick(10, False)), record(MARKET_UNDERLYING, 1, tick(5, False))], {}))
    assert "day_open" in orjson.loads(r.get("latest:underlying:SPY"))  # raw at t=10 and t=5 lose
    sink.write(Batch([record(MARKET_UNDERLYING, 2, tick(11, False))], {}))
    assert orjson.loads(r.get("latest:underlying:SPY"))["tick_id"] == 11  # a newer raw tick wins

    def ohlc(minute: int, close: float, seconds: int) -> bytes:
        start = T0 + dt.timedelta(minutes=minute)
        return encode(OhlcBar(product="SPY", interval="1m", open=close, high=close, low=close, close=close,
                              volume=1, num_ticks=1, start_time=start, end_time=start + dt.timedelta(minutes=1),
                              final=False, timestamp=T0 + dt.timedelta(seconds=seconds)))

    sink.write(Batch([record(ANALYTICS_OHLC, 0, ohlc(1, 10.0, 70)), record(ANALYTICS_OHLC, 1, ohlc(0, 9.0, 71))], {}))
    assert orjson.loads(r.get("latest:ohlc:SPY:1m"))["close"] == 10.0
    sink.write(Batch([record(ANALYTICS_OHLC, 2, ohlc(1, 11.0, 75))], {}))
    assert orjson.loads(r.get("latest:ohlc:SPY:1m"))["close"] == 11.0


class TwoProducts:
    """n enriched ticks per partition for two products, and checks of what Redis then holds."""

    def __init__(self, settings, group: str, n: int) -> None:
        self.r, self.group, self.n = redis_client(settings), group, n
        self.ticks = {p: [record(ANALYTICS_UNDERLYING, i, encode(EnrichedUnderlying(
            product=product, price=100.0 + i, prev_price=None, change=None, change_pct=None,
            day_open=100.0, day_high=100.0 + n, day_low=100.0, timestamp=T0 + dt.timedelta(seconds=i),
            tick_id=i)), partition=p) for i in range(n)] for p, product in enumerate(("NIFTY", "AAPL"))}

    def batch(self, start: int, stop: int) -> Batch:
        records = [rec for i in range(start, stop) for rec in (self.ticks[0][i], self.ticks[1][i])]
        return Batch(records, {("t.analytics.underlying", p): stop - 1 for p in (0, 1)})

    def check_applied_once(self, sink: RedisSink) -> None:
        """Every tick published once per room, in order, seq contiguous; offsets at the end."""
        n, r = self.n, self.r
        assert sink.stats.published == 2 * 2 * n
        assert r.get("seq:general") == str(2 * n).encode()
        for room, product in (("product:NIFTY", "NIFTY"), ("product:AAPL", "AAPL")):
            assert r.get(f"seq:{room}") == str(n).encode()
            history = r.xrange(f"history:{room}", count=n)
            envs = [orjson.loads(fields[b"env"]) for _, fields in history]
            assert [e["seq"] for e in envs] == list(range(envs[0]["seq"], envs[0]["seq"] + len(envs)))
            assert [e["data"]["tick_id"] for e in envs] == [e["seq"] - 1 for e in envs]
            assert all(e["data"]["product"] == product for e in envs)
        assert orjson.loads(r.get("latest:underlying:AAPL"))["tick_id"] == n - 1
        assert r.hgetall(f"sink:offsets:{self.group}") == {
            b"t.analytics.underlying:0": str(n - 1).encode(), b"t.analytics.underlying:1": str(n - 1).encode()}


def test_a_batch_in_several_chunks_redelivered_in_part(sink_settings, unique):
    """A batch goes in chunks, two in flight; a redelivery overlapping what Redis holds, on
    two partitions, is applied once: the stale chunk and the one sent behind it go again, in
    order, without what Redis holds. seq contiguous."""
    ticks = TwoProducts(sink_settings, f"chunks-{unique}", CHUNK_RECORDS * 3)
    sink = RedisSink(sink_settings, ticks.group)
    sink.start()
    held, again = CHUNK_RECORDS * 4 // 5, CHUNK_RECORDS // 2  # ticks per partition
    sink.write(ticks.batch(0, held))
    # Its first chunk (ticks `again`.. per partition, both partitions) is in part in Redis;
    # the chunk in flight behind it lies wholly beyond what Redis holds, yet must not apply
    # before the missing part of the first.
    sink.write(ticks.batch(again, ticks.n))
    assert sink.stats.skipped == 2 * (held - again)
    ticks.check_applied_once(sink)


def test_a_chunk_redelivered_whole_lets_the_one_behind_it_apply(sink_settings, unique):
    """The chunk sent behind a stale one applies at once when Redis holds exactly what the
    stale one would have stored (its guard): no second call for it."""
    ticks = TwoProducts(sink_settings, f"whole-{unique}", CHUNK_RECORDS * 2)
    sink = RedisSink(sink_settings, ticks.group)
    sink.start()
    sink.write(ticks.batch(0, CHUNK_RECORDS // 2))  # one chunk: both partitions' first records
    sink.write(ticks.batch(0, ticks.n))  # four chunks, the first of them in Redis already
    assert sink.stats.skipped == CHUNK_RECORDS
    assert sink.stats.scripts == 1 + 4
    ticks.check_applied_once(sink)


def test_chunks_in_flight_when_redis_lost_the_script(sink_settings, unique):
    """Redis restarted without the script (SCRIPT FLUSH) under a batch of several chunks: the
    script is loaded again and every chunk applied once, in order."""
    ticks = TwoProducts(sink_settings, f"noscript-{unique}", CHUNK_RECORDS * 2)
    sink = RedisSink(sink_settings, ticks.group)
    sink.start()
    sink.write(ticks.batch(0, CHUNK_RECORDS // 4))
    ticks.r.script_flush()
    sink.write(ticks.batch(CHUNK_RECORDS // 4, ticks.n))
    assert sink.stats.skipped == 0
    ticks.check_applied_once(sink)


def test_the_live_lane_reads_exactly_the_topics_published_to_socket_rooms():
    """A record of a live-lane topic is published; a state-lane one only sets a latest value.
    So nothing a socket client waits for shares a consumer (and its fetches) with the rest."""
    assert sorted(LIVE_TOPICS + STATE_TOPICS) == sorted(REDIS_TOPICS) == sorted(ROUTES)
    data = {"product": "NIFTY", "expiry": "2026-12-31", "interval": "1m", "event_id": "e"}
    for topic in REDIS_TOPICS:
        record = SinkRecord(topic, topic, 0, 0, None, b"{}", data, {"timestamp": T0, "start_time": T0})
        published = ROUTES[topic](record).publish is not None
        assert published == (topic in LIVE_TOPICS), topic


def test_the_lanes_share_the_offsets_and_only_the_live_lane_fetches_sooner():
    embedded, kafka = Settings(_env_file=None), Settings(_env_file=None, kafka_bootstrap="k:9092")
    wait = "fetch.wait.max.ms"
    live, state = lanes = redis_lanes(embedded, "g", threading.Event())
    try:
        assert (live.group_id, state.group_id) == ("g", "g-state")
        assert set(live.decoders) == set(LIVE_TOPICS) and set(state.decoders) == set(STATE_TOPICS)
        # One hash for both: a lane resumes from what Redis holds, whichever group committed.
        assert live.sink.offsets_key == state.sink.offsets_key == "sink:offsets:g"
        assert live._consumer_conf[wait] == EMBEDDED_LIVE_FETCH_WAIT_MS < EMBEDDED_FETCH_WAIT_MS
        assert state._consumer_conf[wait] == EMBEDDED_FETCH_WAIT_MS
    finally:
        for lane in lanes:
            lane.dlq.close()
            lane.sink.close()
    for lane in redis_lanes(kafka, "g", threading.Event()):
        assert wait not in lane._consumer_conf  # real Kafka keeps its own
        lane.dlq.close()
        lane.sink.close()


def test_a_lane_that_fails_stops_the_other_and_the_process_exits_non_zero():
    class Lane:
        def __init__(self, service: str, fail: bool) -> None:
            self.service, self.fail, self.stopped = service, fail, False

        def run(self) -> int:
            if self.fail:
                raise RuntimeError("boom")
            stop.wait(30)
            self.stopped = stop.is_set()
            return 0

    stop = threading.Event()
    failing, other = Lane("a", fail=True), Lane("b", fail=False)
    assert run_lanes([failing, other], stop) == 1
    assert other.stopped
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()  # SIGTERM: both lanes drain and stop cleanly
    assert run_lanes([Lane("a", False), Lane("b", False)], stop) == 0
