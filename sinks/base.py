"""What a sink is: one `write(batch)` that stores a batch of decoded records idempotently.

The runner (`sinks.runner`) does everything else: consuming, decoding, the DLQ, retries,
committing offsets once `write` returned. A sink only decides how records land in its store
and which of its errors are worth retrying.
"""
from __future__ import annotations

import datetime as dt
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Iterable

TopicPartition = tuple[str, int]  # (Kafka topic as consumed, partition)


@dataclass(slots=True)
class SinkRecord:
    """One consumed, decoded record."""

    topic: str  # registry name without the settings' topic prefix, e.g. "market.underlying"
    kafka_topic: str  # the topic it was consumed from (with the prefix)
    partition: int
    offset: int
    key: bytes | None
    value: bytes  # the message value as received (the record's JSON)
    data: dict[str, Any]  # the JSON object; `event_id` always set
    times: dict[str, dt.datetime]  # top-level timestamps (timestamp, start_time, end_time), UTC

    @property
    def event_id(self) -> str:
        return self.data["event_id"]


@dataclass(frozen=True, slots=True)
class Poison:
    """A consumed message that is not a valid record (bad JSON, schema violation)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    error_type: str


@dataclass(slots=True)
class Batch:
    """The records to write, and the last offset consumed per partition (poison included):
    what gets committed once the batch is stored. `poison` goes to the DLQ."""

    records: list[SinkRecord] = field(default_factory=list)
    offsets: dict[TopicPartition, int] = field(default_factory=dict)
    poison: list[Poison] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A record the store refuses for good (not a transient failure): it goes to the DLQ."""

    record: SinkRecord
    reason: str
    error_type: str


class Sink(ABC):
    """A store the runner writes batches to.

    `write` must be idempotent: the runner retries a batch after a transient error and Kafka
    redelivers uncommitted batches after a crash, so the same records can arrive again. It
    must not sleep or retry by itself; it raises, and the runner decides (`is_transient`).
    """

    name: str = "sink"
    # Write a partly filled batch as soon as the consumer has caught up (with `sink_eager`):
    # for stores that feed live readers; bulk stores may prefer full batches.
    eager: bool = True

    def start(self) -> None:
        """Prepare the store (indexes, scripts). Retried by the runner on transient errors."""

    @abstractmethod
    def write(self, batch: Batch) -> list[Rejected]:
        """Store the batch; return the records that can never be stored (they go to the DLQ)."""

    def is_transient(self, exc: BaseException) -> bool:
        """Is `exc` worth retrying (server down, timeout)? Anything else stops the sink."""
        return False

    def stored_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The last offset per partition the store itself knows it holds (for stores that keep
        offsets with the data); the runner skips ahead of Kafka's committed offset to them."""
        return {}

    def forget_offsets(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop stored offsets that belong to an earlier incarnation of a topic."""

    def close(self) -> None:
        """Release the store's clients."""
