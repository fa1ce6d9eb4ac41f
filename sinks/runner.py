"""Run a sink: consume in batches, decode, write, and only then commit (at-least-once).

    runner = SinkRunner(MongoSink(settings), settings, group_id="deltastream-sink-mongo",
                        topics=MONGO_TOPICS, service="sink-mongo")
    runner.run()  # until `stop` is set (SIGTERM / SIGINT in `sinks.run`)

A batch is up to `sink_batch_size` messages, cut after `sink_max_latency_ms` at the latest;
an `eager` sink (Redis, with `sink_eager`) cuts it at once when the consumer has caught up
(nothing more queued locally) while the writer is idle: a quiet stream is written as it
arrives, a busy one in batches that grow while the writer works (the 250 ms wait for a
partly filled batch was most of the feed → WebSocket latency). A sink that is not eager
(MongoDB) fetches with a longer wait on the embedded broker (`deltastream.clients.
bulk_fetch_wait`); callers pass other consumer settings as `consumer_overrides` (the Redis
sink's live lane: `live_fetch_wait`).
Each message is decoded (`sinks.decode`); poison (bad JSON, schema violation) goes to the
DLQ with its reason and offsets. Then, in the writer thread:
1. the DLQ records are produced and acknowledged;
2. `sink.write(batch)` stores the records; those the store refuses for good go to the DLQ;
and back in the consumer thread:
3. the batch's offsets (last + 1 per partition) are committed, asynchronously: the writer
   gets the next batch at once instead of after a broker round trip. Before partitions are
   revoked and at shutdown every written offset is committed again, synchronously.
A crash anywhere before 3 (or before an asynchronous commit landed) redelivers the batch;
the sinks' writes are idempotent, so a redelivery leaves one copy.

While the writer stores batch N the consumer thread consumes and decodes batch N+1 (one
batch in flight at most), so the sink's own work overlaps the store's. When batch N+1 is
ready before N is stored, the consumer waits; after a second it pauses its partitions and
keeps polling (Quix-style backpressure): the group membership stays alive, rebalances are
served, nothing new is fetched.

Transient failures (the sink's `is_transient`, unacknowledged DLQ records) are retried in
the writer with exponential backoff and jitter (tenacity) and nothing is committed
meanwhile. Before partitions are revoked the batches in flight and pending are written and
committed (`on_revoke`); if the store stays down they are dropped uncommitted and the next
owner gets them again.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor, wait as wait_futures
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence, TypeVar

import tenacity
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from deltastream.clients import TailGaps, bulk_fetch_wait, consumer_config, end_offsets
from deltastream.runtime.topics import ensure_topics
from deltastream.settings import Settings
from schemas.codec import SchemaError
from sinks.base import Batch, Poison, Rejected, Sink, TopicPartition as TP
from sinks.decode import TopicDecoder
from sinks.dlq import DeadLetters, DlqError

log = logging.getLogger(__name__)
T = TypeVar("T")

PAUSE_AFTER = 1.0  # seconds the consumer waits for the writer before pausing its partitions
# Sinks read in bulk. Fetching up to 10 MiB per partition instead of librdkafka's 1 MiB
# halves the embedded broker's CPU per message (Tansu: ~26 -> ~11 us) and more than doubles
# the consume rate; passed through `consumer_config`, like any override.
BULK_CONSUMER = {"max.partition.fetch.bytes": 10 << 20}


class GaveUp(RuntimeError):
    """A batch could not be written within the retry limit (or before a deadline)."""


@dataclass
class RunnerStats:
    consumed: int = 0  # messages taken from Kafka
    written: int = 0  # records stored and committed
    batches: int = 0
    dead_lettered: int = 0
    retries: int = 0
    write_seconds: float = 0.0  # writer thread: inside sink.write
    decode_seconds: float = 0.0  # consumer thread
    commit_seconds: float = 0.0
    wait_seconds: float = 0.0  # consumer thread waiting for the writer (backpressure)
    started: float = field(default_factory=time.monotonic)


class SinkRunner:
    def __init__(self, sink: Sink, settings: Settings, *, group_id: str, topics: Sequence[str],
                 service: str, stop: threading.Event | None = None,
                 consumer_overrides: dict | None = None) -> None:
        self.sink, self.settings, self.group_id, self.service = sink, settings, group_id, service
        self.stop = stop or threading.Event()
        self.decoders = {settings.topic(t): TopicDecoder(t, settings.topic(t), settings.sink_validate)
                         for t in topics}
        self.dlq = DeadLetters(settings, service)  # used by the writer thread only
        self.stats = RunnerStats()
        self._eager = settings.sink_eager and sink.eager
        paced = {} if sink.eager else bulk_fetch_wait(settings)
        self._consumer_conf = consumer_config(settings, group_id, on_commit=self._on_commit,
                                              **{**BULK_CONSUMER, **paced, **(consumer_overrides or {})})
        self.consumer: Consumer | None = None
        self.gaps: TailGaps | None = None  # with the consumer
        self._writer = ThreadPoolExecutor(1, thread_name_prefix=f"{service}-writer")
        self.batch = Batch()  # being filled by the consumer thread
        self._count = 0  # messages in it, poison included
        self._first: float | None = None  # when its first message arrived
        self._caught_up = False  # the last consume took everything queued locally
        self._inflight: tuple[Batch, Future] | None = None  # with the writer
        self._assigned: set[TP] = set()
        self._paused: set[TP] = set()
        self._position: dict[TP, int] = {}  # last offset consumed since assignment
        self._written: dict[TP, int] = {}  # last offset stored (committed asynchronously)
        self._stop_deadline: float | None = None
        self._abort_at: float | None = None  # the writer gives up retrying at this time
        self._last_kafka_error = 0.0

    # -- the loop --------------------------------------------------------------------------------
    def run(self) -> int:
        """Consume and write until `stop` is set; 0 on a clean stop, 1 if a batch was given up."""
        code = 0
        try:
            self._retry(self.sink.start, "start")
            # A subscription to a topic that does not exist yet is only retried at the next
            # metadata refresh (minutes): create the registry's topics first (idempotent).
            self._retry(lambda: ensure_topics(self.settings), "create topics")
            self.consumer = Consumer(self._consumer_conf)
            self.gaps = TailGaps(self.consumer, self.settings)
            self.consumer.subscribe(list(self.decoders), on_assign=self._on_assign,
                                    on_revoke=self._on_revoke, on_lost=self._on_lost)
            log.info("%s: group %s on %s, topics %s", self.service, self.group_id,
                     self.settings.kafka_servers, ", ".join(self.decoders))
            last_report = time.monotonic()
            while not self.stop.is_set():
                self._reap()
                if self._due():
                    if self._inflight is None:
                        self._submit()
                    else:
                        self._wait_for_writer()
                        continue
                if self._eager and self._first is not None and self._inflight is not None:
                    self._await_writer()
                else:
                    self._fill(self._poll_timeout())
                if time.monotonic() - last_report >= 30:
                    self.report()
                    last_report = time.monotonic()
            self._begin_shutdown()
            self._drain(self._stop_deadline)
        except GaveUp as exc:
            log.error("%s: %s; the batch stays uncommitted and is consumed again later",
                      self.service, exc)
            self._reset_batch()
            self._inflight = None
            code = 1
        finally:
            self._begin_shutdown()
            if self.consumer is not None:
                try:
                    self.consumer.close()  # leaves the group (on_revoke finds nothing to write)
                except Exception as exc:  # noqa: BLE001 - closing is best effort
                    log.warning("%s: consumer close: %s", self.service, exc)
            self._writer.shutdown(wait=True)
            self.dlq.close()
            self.sink.close()
            self.report()
        return code

    def report(self) -> None:
        s = self.stats
        elapsed = max(time.monotonic() - s.started, 1e-9)
        log.info("%s: %d consumed, %d written in %d batches (%.0f records/s; write %.1fs, decode "
                 "%.1fs, commit %.1fs, waited %.1fs), %d dead-lettered, %d retries, %d re-reads",
                 self.service, s.consumed, s.written, s.batches, s.written / elapsed, s.write_seconds,
                 s.decode_seconds, s.commit_seconds, s.wait_seconds, s.dead_lettered, s.retries,
                 self.gaps.refetched if self.gaps else 0)

    def _latency_left(self) -> float:
        if self._first is None:
            return float("inf")
        return self.settings.sink_max_latency_ms / 1000 - (time.monotonic() - self._first)

    def _due(self) -> bool:
        if self._count >= self.settings.sink_batch_size:
            return True
        if self._first is None:
            return False
        return self._latency_left() <= 0 or (self._eager and self._caught_up and self._inflight is None)

    def _poll_timeout(self) -> float:
        timeout = 0.2 if self._first is None else max(0.0, min(0.2, self._latency_left()))
        return min(timeout, 0.01) if self._inflight is not None else timeout

    def _begin_shutdown(self) -> None:
        self.stop.set()
        if self._stop_deadline is None:
            self._stop_deadline = time.monotonic() + self.settings.sink_shutdown_seconds

    # -- consuming -------------------------------------------------------------------------------
    def _fill(self, timeout: float) -> None:
        room = max(1, self.settings.sink_batch_size - self._count)
        # consume(n, timeout) waits for n messages or the timeout: wait for the first one
        # only, then take what is queued locally
        messages = self.consumer.consume(1, timeout)
        if messages and room > 1:
            messages += self.consumer.consume(room - 1, 0)
        self._caught_up = len(messages) < room
        messages = self.gaps.filter(messages)
        if not messages:
            return
        started = time.perf_counter()
        batch, decoders, position = self.batch, self.decoders, self._position
        records, offsets = batch.records, batch.offsets
        taken = 0
        for msg in messages:
            if msg.error() is not None:
                self._on_kafka_error(msg.error())
                continue
            topic, partition, offset = msg.topic(), msg.partition(), msg.offset()
            tp = (topic, partition)
            last = position.get(tp, -1)
            if offset <= last:
                self._on_offset_regression(tp, last, offset)
                batch = self.batch
                records, offsets = batch.records, batch.offsets
                taken = 0
            position[tp] = offset
            try:
                records.append(decoders[topic](msg))
            except (SchemaError, ValueError, TypeError) as exc:
                batch.poison.append(Poison(topic, partition, offset, msg.key(), msg.value(),
                                           getattr(exc, "reason", None) or str(exc), type(exc).__name__))
            offsets[tp] = offset
            taken += 1
        if taken:
            self._count += taken
            self.stats.consumed += taken
            if self._first is None:
                self._first = time.monotonic()
        self.stats.decode_seconds += time.perf_counter() - started

    def _on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        if err is not None:
            log.warning("%s: asynchronous commit failed (%s); the partition's next commit covers it", self.service, err)

    def _on_kafka_error(self, err: KafkaError) -> None:
        if err.fatal():
            raise KafkaException(err)
        now = time.monotonic()
        if now - self._last_kafka_error > 10:  # a broker outage is reported once per 10 s
            log.warning("%s: Kafka: %s", self.service, err)
            self._last_kafka_error = now

    def _on_offset_regression(self, tp: TP, last: int, offset: int) -> None:
        # Only a reset moves a partition back (the runner never seeks backwards): the topic
        # was recreated (the in-memory broker restarted). Offsets the store kept for the old
        # topic would make it skip the new records.
        log.warning("%s: %s[%d] went back from offset %d to %d (topic recreated?); forgetting "
                    "the offsets stored for it", self.service, tp[0], tp[1], last, offset)
        self._drain(time.monotonic() + max(self.settings.sink_shutdown_seconds, 1.0))
        self._written.pop(tp, None)  # the old incarnation's: never commit it again
        self._retry(lambda: self.sink.forget_offsets([tp]), "forget offsets")

    # -- handing batches to the writer ---------------------------------------------------------
    def _submit(self) -> None:
        batch = self.batch
        self._reset_batch()
        if batch.offsets:
            self._inflight = (batch, self._writer.submit(self._store, batch))
        self._resume()

    def _reset_batch(self) -> None:
        self.batch = Batch()
        self._count = 0
        self._first = None

    def _await_writer(self) -> None:
        """An eager sink's batch waits only for the write in flight: wake when it ends, then
        take what arrived meanwhile (waiting in the consumer instead, for the next message,
        held a quarter of the batches up to its 10 ms timeout after the write had ended)."""
        wait_futures([self._inflight[1]], timeout=self._poll_timeout())
        self._fill(0)

    def _wait_for_writer(self) -> None:
        """The next batch is ready and the writer still busy: wait, then pause and poll."""
        started = time.monotonic()
        future = self._inflight[1]
        if not self._paused:
            wait_futures([future], timeout=PAUSE_AFTER)
            if not future.done():
                self._pause(self._assigned)
        while not future.done() and not self.stop.is_set():
            self._fill(0.1)  # serves rebalances; paused partitions deliver nothing
        self.stats.wait_seconds += time.monotonic() - started

    def _reap(self, timeout: float | None = 0) -> None:
        """Commit the batch in flight once the writer stored it (GaveUp if it could not)."""
        if self._inflight is None:
            return
        batch, future = self._inflight
        if timeout == 0 and not future.done():
            return
        try:
            rejected = future.result(timeout)
        except TimeoutError:
            raise GaveUp("the write is still running at the deadline") from None
        finally:
            if future.done():
                self._inflight = None
        self._written.update(batch.offsets)
        self._commit(batch.offsets, asynchronous=True)
        self.stats.written += len(batch.records) - len(rejected)
        self.stats.batches += 1

    def _drain(self, deadline: float | None) -> None:
        """Store the batch in flight and the one being filled, now; then commit everything
        stored synchronously (the asynchronous commits may not have landed yet)."""
        self._abort_at = deadline
        try:
            self._reap(None if deadline is None else max(0.0, deadline - time.monotonic()) + 5)
            if self.batch.offsets:
                self._submit()
                self._reap(None if deadline is None else max(0.0, deadline - time.monotonic()) + 5)
        finally:
            self._abort_at = None
        if self._written and self.consumer is not None:
            self._commit(self._written, asynchronous=False)

    def _store(self, batch: Batch) -> list[Rejected]:
        """Writer thread: DLQ the poison, write the batch, DLQ what the store refused."""
        for p in batch.poison:
            self.dlq.add(topic=p.topic, partition=p.partition, offset=p.offset, key=p.key,
                         value=p.value, reason=p.reason, error_type=p.error_type)
        self._retry(self.dlq.send, "DLQ")
        started = time.perf_counter()
        rejected = self._retry(lambda: self.sink.write(batch), "write") if batch.records else []
        self.stats.write_seconds += time.perf_counter() - started
        for r in rejected:
            rec = r.record
            self.dlq.add(topic=rec.kafka_topic, partition=rec.partition, offset=rec.offset,
                         key=rec.key, value=rec.value, reason=r.reason, error_type=r.error_type)
        self._retry(self.dlq.send, "DLQ")
        self.stats.dead_lettered += len(batch.poison) + len(rejected)
        return rejected

    def _commit(self, offsets: dict[TP, int], asynchronous: bool) -> None:
        tps = [TopicPartition(t, p, o + 1) for (t, p), o in offsets.items() if (t, p) in self._assigned]
        if not tps:
            return
        started = time.perf_counter()
        if asynchronous:  # failures are reported to _on_commit; the next commits cover them
            try:
                self.consumer.commit(offsets=tps, asynchronous=True)
            except KafkaException as exc:
                log.warning("%s: commit failed (%s); retried at the next batch", self.service, exc.args[0])
            self.stats.commit_seconds += time.perf_counter() - started
            return
        for attempt in range(3):
            try:
                self.consumer.commit(offsets=tps, asynchronous=False)
                break
            except KafkaException as exc:
                # Not fatal: the batch is stored, a redelivery is an idempotent rewrite.
                log.warning("%s: commit failed (%s)%s", self.service, exc.args[0],
                            "; retrying" if attempt < 2 else "; records may be delivered again")
                if attempt < 2:
                    time.sleep(0.2 * (attempt + 1))
        self.stats.commit_seconds += time.perf_counter() - started

    # -- retries ------------------------------------------------------------------------------------
    def _transient(self, exc: BaseException) -> bool:
        return isinstance(exc, DlqError) or self.sink.is_transient(exc)

    def _give_up_now(self) -> bool:
        now = time.monotonic()
        if self.stop.is_set():
            self._begin_shutdown()  # SIGTERM while retrying: a last chance until the deadline
            if now >= self._stop_deadline:
                return True
        return self._abort_at is not None and now >= self._abort_at

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        limit = self.settings.sink_retry_max_seconds

        def give_up(state: tenacity.RetryCallState) -> bool:
            return self._give_up_now() or (bool(limit) and state.seconds_since_start >= limit)

        def sleep(seconds: float) -> None:  # interrupted by shutdown and rebalance deadlines
            end = time.monotonic() + seconds
            while (left := end - time.monotonic()) > 0 and not self._give_up_now():
                time.sleep(min(left, 0.1))

        def before_sleep(state: tenacity.RetryCallState) -> None:
            self.stats.retries += 1
            exc = state.outcome.exception() if state.outcome else None
            log.warning("%s: %s failed (%s: %s); attempt %d, retrying in %.1fs", self.service, what,
                        type(exc).__name__, str(exc)[:200], state.attempt_number,
                        state.next_action.sleep if state.next_action else 0)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(self._transient),
            wait=tenacity.wait_exponential_jitter(
                multiplier=0.2, max=self.settings.sink_retry_backoff_max_seconds, jitter=0.5),
            stop=give_up, sleep=sleep, before_sleep=before_sleep)
        try:
            return retrying(fn)
        except tenacity.RetryError as exc:
            cause = exc.last_attempt.exception()
            raise GaveUp(f"{what} still failing after {exc.last_attempt.attempt_number} attempts: "
                         f"{type(cause).__name__}: {cause}") from cause

    def _pause(self, tps: Iterable[TP]) -> None:
        todo = [TopicPartition(t, p) for t, p in tps if (t, p) not in self._paused]
        if todo:
            self.consumer.pause(todo)
            self._paused.update((tp.topic, tp.partition) for tp in todo)

    def _resume(self) -> None:
        todo = [TopicPartition(t, p) for t, p in self._paused if (t, p) in self._assigned]
        self._paused.clear()
        if todo:
            try:
                self.consumer.resume(todo)
            except KafkaException as exc:
                log.warning("%s: resume: %s", self.service, exc)

    # -- rebalancing --------------------------------------------------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        tps = [(p.topic, p.partition) for p in partitions]
        for tp in tps:
            self._position.pop(tp, None)
        self.gaps.forget(tps)
        self._assigned.update(tps)
        skips = self._skip_to_stored(consumer, partitions)
        backpressure = bool(self._paused)
        if skips or backpressure:
            for p in partitions:
                if (p.topic, p.partition) in skips:
                    p.offset = skips[(p.topic, p.partition)]
            consumer.assign(partitions)  # instead of the automatic assign: with our offsets
        if backpressure:
            self._pause(tps)
        log.info("%s: assigned %s", self.service, _describe(tps))

    def _skip_to_stored(self, consumer: Consumer, partitions: list[TopicPartition]) -> dict[TP, int]:
        """Partitions the store holds further than Kafka's committed offset: where to resume."""
        try:
            stored = self.sink.stored_offsets([(p.topic, p.partition) for p in partitions])
        except Exception as exc:  # noqa: BLE001 - the write's own check still skips repeats
            log.warning("%s: could not read the offsets stored with the data (%s)", self.service, exc)
            return {}
        if not stored:
            return {}
        try:
            committed = consumer.committed([TopicPartition(t, p) for t, p in stored], timeout=10)
        except KafkaException as exc:
            log.warning("%s: could not read committed offsets (%s)", self.service, exc)
            return {}
        skips, stale = {}, []
        try:
            ends = end_offsets(self.settings, consumer, list(stored), timeout=5)
        except (KafkaException, TimeoutError) as exc:
            log.warning("%s: could not read the end offsets (%s)", self.service, exc)
            ends = {}
        for c in committed:
            tp = (c.topic, c.partition)
            held = stored[tp]
            high = ends.get(tp)
            if high is None:
                continue
            if held + 1 > high:
                stale.append(tp)  # from an earlier incarnation of the topic
            elif c.offset < 0 or held + 1 > c.offset:
                skips[tp] = held + 1
        if stale:
            log.warning("%s: stored offsets beyond the end of %s (topic recreated); forgetting them",
                        self.service, _describe(stale))
            try:
                self.sink.forget_offsets(stale)
            except Exception as exc:  # noqa: BLE001
                log.warning("%s: could not forget them (%s)", self.service, exc)
        if skips:
            log.info("%s: the store already holds %s; skipping ahead of the committed offsets",
                     self.service, ", ".join(f"{t}[{p}] to {o}" for (t, p), o in skips.items()))
        return skips

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        revoked = {(p.topic, p.partition) for p in partitions}
        # Write and commit before the partitions move: the next owner starts after them.
        try:
            self._drain(time.monotonic() + max(self.settings.sink_shutdown_seconds, 1.0))
        except GaveUp as exc:
            log.warning("%s: could not write before the rebalance (%s); the next owner gets "
                        "those records again", self.service, exc)
            self._inflight = None
        self._drop(revoked)
        log.info("%s: revoked %s", self.service, _describe(revoked))

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        lost = {(p.topic, p.partition) for p in partitions}
        log.warning("%s: lost %s; their pending records are dropped uncommitted", self.service,
                    _describe(lost))
        self._drop(lost)

    def _drop(self, tps: set[TP]) -> None:
        batch = self.batch
        if any(tp in tps for tp in batch.offsets):
            batch.records = [r for r in batch.records if (r.kafka_topic, r.partition) not in tps]
            batch.poison = [p for p in batch.poison if (p.topic, p.partition) not in tps]
            for tp in tps:
                batch.offsets.pop(tp, None)
            if not batch.offsets:
                self._reset_batch()
        self._assigned -= tps
        self._paused -= tps
        for tp in tps:
            self._position.pop(tp, None)
            self._written.pop(tp, None)
        if self.gaps is not None:
            self.gaps.forget(tps)


def _describe(tps: Iterable[TP]) -> str:
    by_topic: dict[str, list[int]] = {}
    for t, p in tps:
        by_topic.setdefault(t, []).append(p)
    return ", ".join(f"{t}{sorted(ps)}" for t, ps in sorted(by_topic.items())) or "nothing"
