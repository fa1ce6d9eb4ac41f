"""Keyed processor state on Faust tables, written to the changelog once per commit.

Why not write the table on every update: on the embedded broker every produced record is
its own batch (~6-8k records/s for everything the worker produces), and a changelog write
per key per batch would take most of that. Instead each `StateStore` keeps the keys changed
since the last commit in a small overlay and writes them to its table (hence to the
changelog) when Faust starts an offset commit (`CheckpointSensor.on_commit_initiated`);
Faust's commit then flushes the producer before it commits the offsets. Only state of
batches whose outputs were acknowledged (and whose messages were acked) is written. So:

* state is never behind the committed offsets: whatever was processed before a commit was
  in the changelog before the commit;
* state can be ahead of them (processed, flushed, then a crash before the commit, or a
  commit Faust discards during a rebalance): every state carries, per key, the last source
  offset it applied (`stream_processors.dedupe`), and the replayed messages are skipped.

Outputs of a batch are acknowledged by the broker before its state is released, so a crash
can repeat outputs (same event ids, same content) but not lose them.

Values are orjson bytes: `get` hands out a fresh copy, so a batch that fails halfway has
not touched the stored state.

Each table's changelog partition is the partition of the source messages of that key (not
Faust's "current event", which in a batch of many partitions is just the last one seen),
and the table has as many partitions as its source topic, so Faust assigns the changelog
partition to the worker that owns the source partition.
"""
from __future__ import annotations

import logging
from typing import Any, Iterable

import asyncio
from time import monotonic

import faust
import orjson
from faust.sensors import Monitor, Sensor

from stream_processors.outbox import Message

log = logging.getLogger(__name__)


class ChangelogWriter:
    """Sends table changelog records through the output producer pool (librdkafka) instead
    of Faust's producer, and makes Faust's offset commit wait for them.

    Faust's producer sends one record per request to the embedded broker (~600 records/s):
    a commit after a batch of quotes (one write per option symbol, ~2,000) took 3-4 s, and
    Faust pauses every stream while its producer buffer is full. Here the records of a
    checkpoint are handed to the pool at once (`send`), and `wait` - run by Faust's commit
    through its producer's `flush`, right before the offsets are committed - returns when
    the broker has acknowledged all of them (retrying failures), so state still reaches
    the changelog before the offsets it covers are committed; if they cannot be written,
    `wait` raises and the commit does not happen."""

    def __init__(self, output: Any, retry: Any) -> None:
        self.output = output
        self.retry = retry
        self._pending: list[Message] = []
        self._sent: list[Any] = []  # futures of the pool: the messages that failed

    def add(self, message: Message) -> None:
        self._pending.append(message)

    def send(self) -> None:
        if self._pending:
            self._sent.append(self.output.send(self._pending))
            self._pending = []

    async def wait(self) -> None:
        self.send()
        while self._sent:
            failed = await self._sent.pop(0)
            delays = self.retry.delays()
            while failed:
                delay = next(delays, None)
                if delay is None:
                    raise RuntimeError(f"{len(failed)} changelog writes undeliverable: {failed[0][1]}")
                log.warning("%d changelog writes failed (%s); retrying in %.1fs", len(failed),
                            failed[0][1], delay)
                await asyncio.sleep(delay)
                failed = await self.output.send([m for m, _ in failed])

    def attach(self, producer: Any) -> None:
        """Faust's commit awaits `producer.flush()` before committing offsets: from now on
        that also waits for the changelog writes."""
        flush = producer.flush

        async def flush_with_changelog() -> None:
            await flush()
            await self.wait()

        producer.flush = flush_with_changelog


class _Sent:
    """What Faust's table expects back from `send_changelog` (the final partition)."""

    __slots__ = ("message", "partition")

    def __init__(self, partition: int) -> None:
        self.message = self
        self.partition = partition


class RoutedTable(faust.Table):
    """A table whose writes name their changelog partition explicitly (and, with a
    `writer`, go to the changelog through it)."""

    _route: int | None = None
    writer: ChangelogWriter | None = None

    def send_changelog(self, partition: int | None, key: Any, value: Any,
                       key_serializer: Any = None, value_serializer: Any = None) -> Any:
        if self.writer is None or partition is None:
            return super().send_changelog(partition, key, value, key_serializer, value_serializer)
        # serialized exactly as Faust's own send would (Topic.prepare_*), so recovery reads it
        topic = self.changelog_topic
        headers = topic.prepare_headers(None)
        k, headers = topic.prepare_key(key, key_serializer or self.key_serializer, None, headers)
        v, headers = topic.prepare_value(value, value_serializer or self.value_serializer, None, headers)
        if hasattr(headers, "items"):
            headers = list(headers.items())
        self.writer.add(Message(topic.get_topic_name(), k, v, list(headers or ()), 0, partition))
        return _Sent(partition)

    def put(self, partition: int, key: bytes, value: bytes | None) -> None:
        self._route = partition
        try:
            if value is None:
                self.pop(key, None)
            else:
                self[key] = value
        finally:
            self._route = None

    def partition_for_key(self, key: Any) -> int | None:
        if self._route is None:
            raise RuntimeError(f"table {self.name}: write outside StateStore.put")
        return self._route


def routed_table(app: faust.App, name: str, partitions: int, help: str = "") -> RoutedTable:
    table = RoutedTable(app, name=name, partitions=partitions, key_type=bytes, value_type=bytes,
                        beacon=app.tables.beacon, help=help)
    return app.tables.add(table)


class StateStore:
    """Reads through the pending versions to the table; `flush` writes released state.

    A batch's new states are *staged* under its sequence number as soon as it is computed
    (the next batch builds on them) and *released* once the batch's outputs are
    acknowledged; only released state reaches the changelog. Several batches can be in
    flight, so a key can hold several staged versions."""

    def __init__(self, table: RoutedTable) -> None:
        self.table = table
        self._staged: dict[bytes, list[tuple[int, int, bytes | None]]] = {}  # (seq, partition, value)
        self._ready: dict[bytes, tuple[int, bytes | None]] = {}
        self.flushed = 0  # changelog writes so far (for the bench and the logs)

    def get(self, key: str) -> dict | None:
        k = key.encode()
        staged = self._staged.get(k)
        if staged:
            raw = staged[-1][2]
        else:
            ready = self._ready.get(k)
            raw = ready[1] if ready is not None else self.table.get(k)
        return None if raw is None else orjson.loads(raw)

    def stage(self, seq: int, partition: int, key: str, value: dict | None) -> bytes:
        k = key.encode()
        self._staged.setdefault(k, []).append(
            (seq, partition, None if value is None else orjson.dumps(value)))
        return k

    def release(self, seq: int, keys: Iterable[bytes]) -> None:
        """Batch `seq` is done: its versions (and older ones) become writable."""
        for k in keys:
            versions = self._staged.get(k)
            if not versions:
                continue
            n = sum(1 for v in versions if v[0] <= seq)
            if n:
                _, partition, value = versions[n - 1]
                self._ready[k] = (partition, value)
                del versions[:n]
            if not versions:
                del self._staged[k]

    def flush(self) -> int:
        ready, self._ready = self._ready, {}
        for key, (partition, value) in ready.items():
            self.table.put(partition, key, value)
        self.flushed += len(ready)
        return len(ready)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop unwritten state of partitions this worker no longer owns."""
        gone = set(partitions)
        self._ready = {k: v for k, v in self._ready.items() if v[0] not in gone}
        for k in list(self._staged):
            self._staged[k] = [v for v in self._staged[k] if v[1] not in gone]
            if not self._staged[k]:
                del self._staged[k]


class LeanMonitor(Monitor):
    """Faust's monitor without its per-message bookkeeping (counters, timings and a
    str(stream) lookup per event and per message, ~4% of the worker's time on ticks); the
    worker reports its own counts. Kept: the stream's inbound time, which Faust's
    slow-processing check reads."""

    def on_message_in(self, tp: Any, offset: int, message: Any) -> None:
        return None

    def on_stream_event_in(self, tp: Any, offset: int, stream: Any, event: Any) -> None:
        self.stream_inbound_time[tp] = monotonic()
        return None

    def on_stream_event_out(self, tp: Any, offset: int, stream: Any, event: Any,
                            state: Any = None) -> None:
        return None

    def on_message_out(self, tp: Any, offset: int, message: Any) -> None:
        return None


class CheckpointSensor(Sensor):
    """Writes every store's pending state right before Faust commits offsets."""

    def __init__(self, stores: Iterable[StateStore], writer: ChangelogWriter | None = None) -> None:
        super().__init__()
        self.stores = list(stores)
        self.writer = writer

    def on_commit_initiated(self, consumer: Any) -> Any:
        written = sum(store.flush() for store in self.stores)
        if self.writer is not None:
            self.writer.send()  # the commit waits for them (ChangelogWriter.attach)
        if written:
            log.debug("checkpoint: %d state writes", written)
        return None
