"""Keyed processor state on Faust tables, written to the changelog once per commit.

Why not write the table on every update: on the embedded broker every produced record is
its own batch (~6-8k records/s for everything the worker produces), and a changelog write
per key per batch would take most of that. Instead each `StateStore` keeps the keys changed
since the last commit in a small overlay and writes them to its table (hence to the
changelog) when Faust starts an offset commit (`CheckpointSensor.on_commit_initiated`);
Faust's commit then flushes the producer before it commits the offsets. So:

* state is never behind the committed offsets: whatever was processed before a commit was
  in the changelog before the commit;
* state can be ahead of them (processed, flushed, then a crash before the commit, or a
  commit Faust discards during a rebalance): every state carries, per key, the last source
  offset it applied (`stream_processors.dedupe`), and the replayed messages are skipped.

Outputs of a batch are acknowledged by the broker before its state enters the overlay
(`Outbox.send`), so a crash can repeat outputs (same event ids, same content) but not lose
them.

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
    """Reads through the pending overlay to the table; `flush` writes the overlay out."""

    def __init__(self, table: RoutedTable) -> None:
        self.table = table
        self._dirty: dict[bytes, tuple[int, bytes | None]] = {}
        self.flushed = 0  # changelog writes so far (for the bench and the logs)

    def get(self, key: str) -> dict | None:
        k = key.encode()
        pending = self._dirty.get(k)
        raw = pending[1] if pending is not None else self.table.get(k)
        return None if raw is None else orjson.loads(raw)

    def set(self, partition: int, key: str, value: dict | None) -> None:
        self._dirty[key.encode()] = (partition, None if value is None else orjson.dumps(value))

    def flush(self) -> int:
        dirty, self._dirty = self._dirty, {}
        for key, (partition, value) in dirty.items():
            self.table.put(partition, key, value)
        self.flushed += len(dirty)
        return len(dirty)

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop pending writes of partitions this worker no longer owns."""
        gone = set(partitions)
        self._dirty = {k: v for k, v in self._dirty.items() if v[0] not in gone}

    def keys(self) -> list[str]:
        live = {k for k, v in self._dirty.items() if v[1] is not None}
        live |= {k for k in self.table.keys() if k not in self._dirty}
        return sorted(k.decode() for k in live)


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
