"""The MongoDB sink against the real servers: one document per event_id, real datetimes,
indexes, the latest version of an OHLC window, and idempotent redelivery."""
from __future__ import annotations

import datetime as dt
import threading

from confluent_kafka import Producer

from deltastream.clients import mongo_client, producer_config
from schemas.codec import encode, headers
from schemas.records import OhlcBar
from schemas.topics import ANALYTICS_OHLC, MARKET_OPTION_CHAINS, MARKET_OPTION_QUOTES, MARKET_UNDERLYING
from sinks.mongo_sink import INDEXES, MONGO_TOPICS, MongoSink, ensure_indexes
from sinks.run import run_mongo_sink
from sinks.runner import SinkRunner
from tests.sinks.conftest import SinkThread, T0, event_ids, feed, read_topics, wait_until

FEED_TOPICS = [MARKET_UNDERLYING, MARKET_OPTION_QUOTES, MARKET_OPTION_CHAINS]
COLLECTIONS = {MARKET_UNDERLYING: "underlying_ticks", MARKET_OPTION_QUOTES: "option_quotes",
               MARKET_OPTION_CHAINS: "option_chains"}


def bar(close: float, final: bool, seconds: int) -> OhlcBar:
    return OhlcBar(product="NIFTY", interval="1m", open=100.0, high=max(100.0, close), low=min(100.0, close),
                   close=close, volume=10, num_ticks=3, start_time=T0, end_time=T0 + dt.timedelta(minutes=1),
                   final=final, timestamp=T0 + dt.timedelta(seconds=seconds))


def test_mongo_sink_stores_each_record_once_and_a_redelivery_changes_nothing(sink_settings, unique):
    settings = sink_settings
    stats = feed(settings, snapshots=6)
    producer = Producer(producer_config(settings))
    bars = [bar(101.0, False, 10), bar(102.5, False, 30), bar(99.5, True, 65)]  # one window, one _id
    for b in bars:
        producer.produce(settings.topic(ANALYTICS_OHLC), encode(b), b.key(), headers=headers(OhlcBar.SCHEMA))
    assert producer.flush(30) == 0
    produced = read_topics(settings, FEED_TOPICS, stats.produced)
    by_topic = {t: set(event_ids(m for m in produced if m.topic() == settings.topic(t))) for t in FEED_TOPICS}
    # Every delivered record is on the topics (one more may be, if its delivery report was lost).
    total = sum(map(len, by_topic.values()))
    assert total >= stats.produced

    db = mongo_client(settings)[settings.mongo_db]

    def stored() -> int:
        return sum(db[c].count_documents({}) for c in COLLECTIONS.values()) + db.ohlc_bars.count_documents({})

    sink = SinkThread(run_mongo_sink, settings, f"mongo-{unique}")
    wait_until(lambda: stored() >= total + 1, 60, "the sink to store the feed")
    assert sink.stop() == 0

    for topic, collection in COLLECTIONS.items():
        assert {d["_id"] for d in db[collection].find({}, {"_id": 1})} == by_topic[topic]
    tick = db.underlying_ticks.find_one()
    assert tick["_id"] == tick["event_id"]
    assert isinstance(tick["timestamp"], dt.datetime) and tick["timestamp"].tzinfo is not None
    chain = db.option_chains.find_one()
    assert isinstance(chain["expiry"], str) and isinstance(chain["calls"][0]["timestamp"], str)
    # An OHLC window is one document holding its latest (final) version.
    assert db.ohlc_bars.count_documents({}) == 1
    final = db.ohlc_bars.find_one()
    assert final["_id"] == bars[-1].event_id and final["final"] is True and final["close"] == 99.5
    assert final["start_time"] == T0 and isinstance(final["end_time"], dt.datetime)

    # Indexes of docs/storage.md, and the TTL of the logs.
    for collection, wanted in INDEXES.items():
        keys = [tuple(i["key"].items()) for i in db[collection].list_indexes()]
        for spec in wanted:
            assert tuple(spec) in keys, (collection, spec)
    ttl = [i for i in db.logs.list_indexes() if "expireAfterSeconds" in i]
    assert [i["expireAfterSeconds"] for i in ttl] == [int(settings.mongo_logs_retention_days * 86400)]
    assert ensure_indexes(db, settings) == []  # a restart creates nothing twice

    # The whole topic again under another group: upserts by _id, the same documents.
    before = {c: db[c].count_documents({}) for c in COLLECTIONS.values()}
    runner = SinkRunner(MongoSink(settings), settings, group_id=f"mongo-again-{unique}",
                        topics=MONGO_TOPICS, service="sink-mongo")
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    wait_until(lambda: runner.stats.written >= total + len(bars), 60, "the second pass")
    runner.stop.set()
    thread.join(30)
    assert {c: db[c].count_documents({}) for c in COLLECTIONS.values()} == before
    assert db.ohlc_bars.find_one()["final"] is True
