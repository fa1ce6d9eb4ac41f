"""The runner with a recording sink on the real broker: retries without committing, refused
records to the DLQ, a graceful stop that writes and commits the pending batch, and a
rebalance that hands partitions over without processing a record twice."""
from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from deltastream.clients import (EMBEDDED_BULK_FETCH_WAIT_MS, EMBEDDED_FETCH_WAIT_MS, consumer_config,
                                 producer_config)
from deltastream.runtime.topics import ensure_topics
from deltastream.settings import DEFAULT_PRODUCTS, Settings
from schemas.codec import decode, encode, headers
from schemas.records import DlqRecord, UnderlyingTick
from schemas.topics import DELTASTREAM_DLQ, MARKET_UNDERLYING
from sinks.base import Batch, Rejected, Sink
from sinks.mongo_sink import MongoSink
from sinks.runner import GaveUp, SinkRunner
from tests.sinks.conftest import T0, read_topics, wait_until


class Recording(Sink):
    """Remembers every record written; can fail transiently, for good, or refuse records."""

    name = "recording"

    def __init__(self, fail_first: int = 0, refuse: set[str] = frozenset(), fatal: bool = False) -> None:
        self.fail_first, self.refuse, self.fatal = fail_first, refuse, fatal
        self.calls = 0
        self.written: list[str] = []
        self.lock = threading.Lock()

    def write(self, batch: Batch) -> list[Rejected]:
        self.calls += 1
        if self.fatal:
            raise RuntimeError("misconfigured store")
        if self.calls <= self.fail_first:
            raise ConnectionError("store unreachable")
        with self.lock:
            self.written += [r.event_id for r in batch.records if r.event_id not in self.refuse]
        return [Rejected(r, "refused by the store", "Refused") for r in batch.records if r.event_id in self.refuse]

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, ConnectionError)


def produce_ticks(settings, start: int, count: int) -> list[str]:
    ensure_topics(settings)
    producer = Producer(producer_config(settings))
    ids = []
    for i in range(start, start + count):
        tick = UnderlyingTick(product=DEFAULT_PRODUCTS[i % 8], price=100.0 + i, tick_id=i,
                              timestamp=T0 + dt.timedelta(seconds=i))
        producer.produce(settings.topic(MARKET_UNDERLYING), encode(tick), tick.key(),
                         headers=headers(UnderlyingTick.SCHEMA))
        ids.append(tick.event_id)
    assert producer.flush(30) == 0
    return ids


def committed(settings, group: str) -> int:
    consumer = Consumer(consumer_config(settings, group))
    try:
        tps = [TopicPartition(settings.topic(MARKET_UNDERLYING), p) for p in range(3)]
        return sum(max(tp.offset, 0) for tp in consumer.committed(tps, timeout=10))
    finally:
        consumer.close()


def start(runner: SinkRunner) -> tuple[threading.Thread, dict]:
    result: dict = {}

    def main() -> None:
        try:
            result["code"] = runner.run()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            result["error"] = exc

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    return thread, result


def runner_for(settings, sink: Sink, group: str) -> SinkRunner:
    return SinkRunner(sink, settings, group_id=group, topics=[MARKET_UNDERLYING], service="sink-test")


def test_transient_failures_are_retried_and_nothing_is_committed_until_the_write_holds(sink_settings, unique):
    settings = sink_settings.model_copy(update={"sink_retry_backoff_max_seconds": 0.5})
    ids = produce_ticks(settings, 0, 40)
    sink, group = Recording(fail_first=3), f"retry-{unique}"
    runner = runner_for(settings, sink, group)
    thread, result = start(runner)
    wait_until(lambda: sink.calls >= 2, 30, "failing writes")
    assert committed(settings, group) == 0 and sink.written == []
    wait_until(lambda: runner.stats.written == 40, 30, "the retried batch")
    runner.stop.set()
    thread.join(30)
    assert result == {"code": 0}
    assert sorted(sink.written) == sorted(ids) and runner.stats.retries >= 3
    assert committed(settings, group) == 40


def test_records_the_store_refuses_go_to_the_dlq(sink_settings, unique):
    settings = sink_settings
    ids = produce_ticks(settings, 0, 10)
    sink = Recording(refuse={ids[3], ids[7]})
    runner = runner_for(settings, sink, f"refuse-{unique}")
    thread, result = start(runner)
    wait_until(lambda: runner.stats.written == 8, 30, "the batch")
    runner.stop.set()
    thread.join(30)
    assert result == {"code": 0} and runner.stats.dead_lettered == 2
    dead = [decode(m.value(), DlqRecord) for m in read_topics(settings, [DELTASTREAM_DLQ], 2)]
    assert {decode(d.value_bytes(), UnderlyingTick).event_id for d in dead} == {ids[3], ids[7]}
    assert {d.reason for d in dead} == {"refused by the store"}


def test_a_fatal_store_error_stops_the_sink_without_committing(sink_settings, unique):
    settings = sink_settings
    produce_ticks(settings, 0, 5)
    group = f"fatal-{unique}"
    runner = runner_for(settings, Recording(fatal=True), group)
    thread, result = start(runner)
    thread.join(30)
    assert isinstance(result.get("error"), RuntimeError)
    assert committed(settings, group) == 0


def test_a_stop_writes_and_commits_the_pending_batch(sink_settings, unique):
    settings = sink_settings.model_copy(update={"sink_batch_size": 100_000, "sink_max_latency_ms": 600_000, "sink_eager": False})
    ids = produce_ticks(settings, 0, 25)
    sink, group = Recording(), f"stop-{unique}"
    runner = runner_for(settings, sink, group)
    thread, result = start(runner)
    wait_until(lambda: runner.stats.consumed == 25, 30, "the records to be consumed")
    assert sink.written == []  # the batch is neither full nor old enough
    runner.stop.set()  # what SIGTERM does in `sinks.run`
    thread.join(30)
    assert result == {"code": 0}
    assert sorted(sink.written) == sorted(ids) and committed(settings, group) == 25


def test_an_eager_sink_writes_a_quiet_stream_without_waiting_for_a_batch(sink_settings, unique):
    settings = sink_settings.model_copy(update={"sink_batch_size": 100_000, "sink_max_latency_ms": 600_000})
    assert settings.sink_eager  # the default
    sink, group = Recording(), f"eager-{unique}"
    runner = runner_for(settings, sink, group)
    thread, result = start(runner)
    try:
        ids = produce_ticks(settings, 0, 5)
        wait_until(lambda: sorted(sink.written) == sorted(ids), 30, "the records to be written")
        wait_until(lambda: committed(settings, group) == 5, 30, "their offsets to be committed")
    finally:
        runner.stop.set()
        thread.join(30)
    assert result == {"code": 0}


def test_a_store_down_at_shutdown_leaves_the_batch_uncommitted(sink_settings, unique):
    settings = sink_settings.model_copy(update={"sink_shutdown_seconds": 1.0})
    produce_ticks(settings, 0, 5)
    group = f"down-{unique}"
    sink = Recording(fail_first=10**9)
    runner = runner_for(settings, sink, group)
    thread, result = start(runner)
    wait_until(lambda: sink.calls >= 1, 30, "a failing write")
    runner.stop.set()
    thread.join(30)
    assert not thread.is_alive() and result == {"code": 1}
    assert committed(settings, group) == 0  # consumed again after a restart


def test_a_rebalance_hands_partitions_over_without_processing_a_record_twice(sink_settings, unique):
    # Batches are cut only at 50 records: at each rebalance the members hold consumed,
    # unwritten records, which on_revoke must write and commit before letting go.
    settings = sink_settings.model_copy(update={"sink_batch_size": 50, "sink_max_latency_ms": 600_000, "sink_eager": False})
    group = f"rebalance-{unique}"
    shared = Recording()
    first = runner_for(settings, shared, group)
    thread_a, result_a = start(first)
    ids = produce_ticks(settings, 0, 70)  # keys on every partition
    wait_until(lambda: first.stats.consumed >= 70, 30, "the first member to consume")
    assert len(shared.written) == 50  # 20 pending
    second = runner_for(settings, shared, group)
    thread_b, result_b = start(second)
    # (the runner's own view: calling the consumer from this thread during a rebalance
    # deadlocks on the GIL inside confluent-kafka)
    wait_until(lambda: len(second._assigned) > 0, 30, "the second member's assignment")
    assert len(shared.written) == 70  # the first member wrote its pending records on revoke
    ids += produce_ticks(settings, 70, 60)
    wait_until(lambda: first.stats.consumed + second.stats.consumed >= 130, 30, "both members to consume")
    # Both stop (each writes and commits what it holds); the group is not used again.
    first.stop.set()
    second.stop.set()
    thread_a.join(30)
    thread_b.join(30)
    assert result_a == {"code": 0} and result_b == {"code": 0}
    assert sorted(shared.written) == sorted(ids)  # every record once: no double processing
    assert first.stats.written > 70 and second.stats.written > 0
    assert committed(settings, group) == 130


def test_a_bulk_sink_fetches_less_often_on_the_embedded_broker():
    """Each fetch costs Tansu time for every batch of the partitions it names: the MongoDB
    sink (not eager: no live view waits for it) waits longer per fetch; real Kafka keeps
    its own settings."""

    class Bulk(Recording):
        eager = False

    embedded, kafka = Settings(_env_file=None), Settings(_env_file=None, kafka_bootstrap="k:9092")
    assert MongoSink.eager is False
    wait = "fetch.wait.max.ms"
    assert runner_for(embedded, Bulk(), "bulk")._consumer_conf[wait] == EMBEDDED_BULK_FETCH_WAIT_MS
    assert runner_for(embedded, Recording(), "live")._consumer_conf[wait] == EMBEDDED_FETCH_WAIT_MS
    assert wait not in runner_for(kafka, Bulk(), "bulk")._consumer_conf
