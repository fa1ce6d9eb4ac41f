"""Read a time range of Kafka topics back in one deterministic, event-time order.

Partitions are assigned directly (no group rebalances, so the embedded broker's group
quirks cannot wedge a replay) and merged k-way on (timestamp, topic, partition, offset):
two runs over the same data yield the same sequence.
"""
from __future__ import annotations

import heapq
import logging
import uuid
from collections import deque
from typing import Iterator

from confluent_kafka import OFFSET_END, Consumer, KafkaException, TopicPartition

from deltastream.clients import TailGaps, consumer_config, watermarks
from deltastream.settings import Settings
from producers.replay.record import ReplayCompleted, ReplayRecord

log = logging.getLogger(__name__)


class KafkaSource:
    """Records of `topics` with start_ms <= event time <= end_ms (end_ms None: continue live)."""

    def __init__(self, settings: Settings, topics: list[str], start_ms: int, end_ms: int | None,
                 group: str | None = None, batch: int = 5_000, timeout: float = 10.0) -> None:
        self.settings, self.topics, self.start_ms, self.end_ms = settings, topics, start_ms, end_ms
        self.group = group or f"deltastream-replay-{uuid.uuid4().hex[:8]}"
        self.batch, self.timeout = batch, timeout
        self.total_offsets = 0  # upper bound of records to read (for progress)

    def _plan(self, consumer: Consumer) -> list[tuple[TopicPartition, int]]:
        """(partition at its start offset, stop offset) for every partition of every topic."""
        meta = consumer.list_topics(timeout=self.timeout)
        wanted = []
        for topic in self.topics:
            info = meta.topics.get(topic)
            if info is None or info.error is not None:
                raise ValueError(f"topic {topic!r} does not exist on {self.settings.kafka_servers}")
            wanted += [TopicPartition(topic, p, self.start_ms) for p in sorted(info.partitions)]
        found = consumer.offsets_for_times(wanted, timeout=self.timeout)
        marks = watermarks(self.settings, consumer, [(tp.topic, tp.partition) for tp in found],
                           timeout=self.timeout)
        plan = []
        for tp in found:
            low, high = marks[(tp.topic, tp.partition)]
            # offset -1: nothing at/after start. Some brokers (Tansu) answer 0 regardless:
            # the time filter while reading keeps the replay exact either way.
            start = high if tp.offset < 0 or tp.offset == OFFSET_END else max(tp.offset, low)
            plan.append((TopicPartition(tp.topic, tp.partition, start), high))
            self.total_offsets += max(high - start, 0)
        return plan

    def __iter__(self) -> Iterator[ReplayRecord | ReplayCompleted]:
        consumer = Consumer(consumer_config(self.settings, self.group, **{
            "enable.partition.eof": False, "fetch.max.bytes": 52_428_800}))
        try:
            yield from self._run(consumer)
        finally:
            consumer.close()

    def _run(self, consumer: Consumer) -> Iterator[ReplayRecord | ReplayCompleted]:
        plan = self._plan(consumer)
        merge = _Merge([tp.offset >= stop for tp, stop in plan])
        index = {(tp.topic, tp.partition): i for i, (tp, _) in enumerate(plan)}
        stops = [stop for _, stop in plan]
        consumer.assign([tp for tp, _ in plan])
        start_ms, end_ms = self.start_ms, self.end_ms
        gaps = TailGaps(consumer, self.settings)  # a topic still being written to

        while not merge.all_caught_up:
            messages = gaps.filter(consumer.consume(self.batch, 0.5))
            for msg in messages:
                if msg.error():
                    raise KafkaException(msg.error())
                i = index[(msg.topic(), msg.partition())]
                offset = msg.offset()
                if offset >= stops[i]:
                    merge.caught_up(i)
                    if end_ms is not None:
                        continue  # newer than the replay's snapshot of the topic
                ts = msg.timestamp()[1]
                if start_ms <= ts and (end_ms is None or ts <= end_ms):
                    merge.push(i, ReplayRecord(msg.topic(), msg.partition(), offset, ts, msg.key(),
                                               msg.value(), tuple(msg.headers() or ())))
                if offset + 1 >= stops[i]:
                    merge.caught_up(i)
            yield from merge.ready()
            if not messages and not merge.all_caught_up:
                # Trailing offsets that hold no record (transaction markers, compaction)
                # are never delivered: trust the position the consumer reached.
                for tp in consumer.position([tp for tp, _ in plan]):
                    if tp.offset >= stops[index[(tp.topic, tp.partition)]]:
                        merge.caught_up(index[(tp.topic, tp.partition)])
                yield from merge.ready()

        if end_ms is not None:
            return
        yield ReplayCompleted(timestamp_ms=merge.last_ms or start_ms, records=merge.emitted)
        while True:  # live: in arrival order, each batch sorted by the replay order
            records = []
            for msg in gaps.filter(consumer.consume(self.batch, 0.5)):
                if msg.error():
                    raise KafkaException(msg.error())
                ts = msg.timestamp()[1]
                if ts >= start_ms:
                    records.append(ReplayRecord(msg.topic(), msg.partition(), msg.offset(), ts, msg.key(),
                                                msg.value(), tuple(msg.headers() or ())))
            records.sort(key=lambda r: r.order)
            yield from records


class _Merge:
    """k-way merge of per-partition queues that emits a record only when no partition that
    may still deliver an earlier one is empty (so the output order is deterministic)."""

    def __init__(self, caught_up: list[bool]) -> None:
        self.done = list(caught_up)
        self.queues: list[deque[ReplayRecord]] = [deque() for _ in caught_up]
        self.heap: list[tuple[tuple, int]] = []  # (order, partition) of each queue's head
        self.blocked = sum(not d for d in caught_up)  # partitions pending with nothing queued
        self.emitted, self.last_ms = 0, 0

    @property
    def all_caught_up(self) -> bool:
        return all(self.done)

    def push(self, i: int, record: ReplayRecord) -> None:
        queue = self.queues[i]
        if not queue:
            heapq.heappush(self.heap, (record.order, i))
            if not self.done[i]:
                self.blocked -= 1
        queue.append(record)

    def caught_up(self, i: int) -> None:
        if not self.done[i]:
            self.done[i] = True
            if not self.queues[i]:
                self.blocked -= 1

    def ready(self) -> Iterator[ReplayRecord]:
        heap, queues = self.heap, self.queues
        while heap and self.blocked == 0:
            _, i = heapq.heappop(heap)
            record = queues[i].popleft()
            if queues[i]:
                heapq.heappush(heap, (queues[i][0].order, i))
            elif not self.done[i]:
                self.blocked += 1
            self.emitted += 1
            self.last_ms = record.timestamp_ms
            yield record
