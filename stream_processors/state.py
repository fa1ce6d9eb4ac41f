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

import faust
import orjson
from faust.sensors import Sensor

log = logging.getLogger(__name__)


class RoutedTable(faust.Table):
    """A table whose writes name their changelog partition explicitly."""

    _route: int | None = None

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


class CheckpointSensor(Sensor):
    """Writes every store's pending state right before Faust commits offsets."""

    def __init__(self, stores: Iterable[StateStore]) -> None:
        super().__init__()
        self.stores = list(stores)

    def on_commit_initiated(self, consumer: Any) -> Any:
        written = sum(store.flush() for store in self.stores)
        if written:
            log.debug("checkpoint: %d state writes", written)
        return None
