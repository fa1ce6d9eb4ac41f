"""Faults while the feed runs: MongoDB stopped for 10 s, the sink process SIGKILLed mid-batch.
Either way every produced record ends up in MongoDB exactly once."""
from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

from confluent_kafka import Consumer, TopicPartition

from deltastream.clients import consumer_config, end_offsets, mongo_client
from schemas.topics import MARKET_OPTION_CHAINS, MARKET_OPTION_QUOTES, MARKET_UNDERLYING
from tests.sinks.conftest import event_ids, feed, read_topics, sink_env, start_sink_process, wait_until

FEED_TOPICS = [MARKET_UNDERLYING, MARKET_OPTION_QUOTES, MARKET_OPTION_CHAINS]
COLLECTIONS = ["underlying_ticks", "option_quotes", "option_chains"]


class Feeder(threading.Thread):
    """The feed, paced so that it keeps producing through the fault."""

    def __init__(self, settings, snapshots: int, pace: float) -> None:
        super().__init__(daemon=True)
        self.settings, self.snapshots, self.pace, self.stats = settings, snapshots, pace, None

    def run(self) -> None:
        self.stats = feed(self.settings, self.snapshots, pace=self.pace)


def stored_ids(settings) -> tuple[int, set[str]]:
    """(documents, distinct event ids) over the feed's collections."""
    db = mongo_client(settings, serverSelectionTimeoutMS=3000)[settings.mongo_db]
    count, ids = 0, set()
    for name in COLLECTIONS:
        docs = list(db[name].find({}, {"_id": 1, "event_id": 1}))
        assert all(d["_id"] == d["event_id"] for d in docs)
        count += len(docs)
        ids |= {d["_id"] for d in docs}
    db.client.close()
    return count, ids


def count_docs(settings) -> int:
    try:
        db = mongo_client(settings, serverSelectionTimeoutMS=1000)[settings.mongo_db]
        return sum(db[name].estimated_document_count() for name in COLLECTIONS)
    except Exception:  # noqa: BLE001 - the server may be down on purpose
        return -1


def assert_exactly_once(settings, produced: int) -> None:
    # What is on the topics: every delivered record (plus any whose delivery report was lost).
    expected = set(event_ids(read_topics(settings, FEED_TOPICS, produced)))
    assert len(expected) >= produced
    wait_until(lambda: count_docs(settings) >= len(expected), 90, f"{len(expected)} documents")
    count, ids = stored_ids(settings)
    assert count == len(expected) and ids == expected


def committed_count(settings, group: str) -> int:
    """Records the group has committed so far, over the feed's topics."""
    consumer = Consumer(consumer_config(settings, group))
    try:
        tps = [TopicPartition(settings.topic(t), p) for t in FEED_TOPICS
               for p in consumer.list_topics(settings.topic(t), timeout=10).topics[settings.topic(t)].partitions]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def assert_committed_to_the_end(settings, group: str) -> None:
    consumer = Consumer(consumer_config(settings, group))
    try:
        for topic in FEED_TOPICS:
            meta = consumer.list_topics(settings.topic(topic), timeout=10).topics[settings.topic(topic)]
            tps = [TopicPartition(settings.topic(topic), p) for p in meta.partitions]
            ends = end_offsets(settings, consumer, [(tp.topic, tp.partition) for tp in tps])
            for tp in consumer.committed(tps, timeout=10):
                high = ends[(tp.topic, tp.partition)]
                assert tp.offset == high or (high == 0 and tp.offset < 0), (tp, high)
    finally:
        consumer.close()


def stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGTERM)
    return proc.wait(30)


def test_a_mongodb_outage_of_10s_loses_and_doubles_nothing(stack, sink_settings, private_mongo, unique, tmp_path):
    settings = sink_settings.model_copy(update={"mongo_url": private_mongo.url, "sink_batch_size": 300})
    group = f"mongo-outage-{unique}"
    log = tmp_path / "sink.log"
    sink = start_sink_process("mongo", group, sink_env(settings, stack), log)
    feeder = Feeder(settings, snapshots=180, pace=0.1)
    try:
        feeder.start()
        wait_until(lambda: count_docs(settings) > 500, 30, "the sink to be writing")
        private_mongo.kill()
        time.sleep(10)
        assert sink.poll() is None, "the sink must ride out the outage"
        private_mongo.start()
        feeder.join(60)
        assert feeder.stats is not None and feeder.stats.failed == 0
        assert_exactly_once(settings, feeder.stats.produced)
        assert stop(sink) == 0  # SIGTERM: last batch written and committed
        sink = None
        assert_committed_to_the_end(settings, group)
    finally:
        if sink is not None and sink.poll() is None:
            sink.kill()
    text = log.read_text()
    assert "retrying" in text, text[-3000:]  # the outage was seen and ridden out


def test_a_sink_killed_mid_batch_and_restarted_loses_and_doubles_nothing(stack, sink_settings, unique, tmp_path):
    settings = sink_settings.model_copy(update={"sink_batch_size": 500})
    group = f"mongo-kill-{unique}"
    log = tmp_path / "sink.log"
    env = sink_env(settings, stack)
    sink = start_sink_process("mongo", group, env, log)
    # Long enough that the feed still runs when the sink is caught up and writing steadily.
    feeder = Feeder(settings, snapshots=400, pace=0.05)
    try:
        feeder.start()
        wait_until(lambda: count_docs(settings) > 1000, 30, "the sink to be writing")
        # Aim the kill at a batch stored but not committed yet. Commits follow the write within
        # milliseconds since they went asynchronous, so the window is not always caught: then the
        # kill lands mid-stream anyway (records consumed, not yet stored or committed).
        try:
            wait_until(lambda: count_docs(settings) > committed_count(settings, group), 15,
                       "a batch in flight", every=0.01)
        except AssertionError:
            pass
        os.kill(sink.pid, signal.SIGKILL)  # no flush, no commit, no leaving the group
        sink.wait(10)
        sink = start_sink_process("mongo", group, env, log)
        feeder.join(60)
        assert feeder.stats is not None and feeder.stats.failed == 0
        assert_exactly_once(settings, feeder.stats.produced)
        assert stop(sink) == 0
        sink = None
        assert_committed_to_the_end(settings, group)
    finally:
        if sink is not None and sink.poll() is None:
            sink.kill()
