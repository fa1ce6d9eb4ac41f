"""The replay record: one Kafka message, whatever it was read from (Kafka, files, MongoDB).

Like Databento's replay, live and historical data share one record format; typed access
goes through the `ds-schema` header and `schemas.codec`.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, NamedTuple

from schemas.codec import decode, decode_dict, model_for, schema_of
from schemas.records import Record


class ReplayRecord(NamedTuple):
    # A NamedTuple: built once per replayed message, it is the hot path's allocation.
    topic: str  # as recorded (without any replay prefix)
    partition: int
    offset: int
    timestamp_ms: int  # event time
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def order(self) -> tuple[int, str, int, int]:
        """The total order of a replay: event time, then topic, partition, offset."""
        return (self.timestamp_ms, self.topic, self.partition, self.offset)

    @property
    def timestamp(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.timestamp_ms / 1000, dt.timezone.utc)

    @property
    def schema(self) -> str | None:
        return schema_of(list(self.headers))

    def as_dict(self) -> dict[str, Any]:
        return decode_dict(self.value)

    def as_record(self) -> Record:
        """The typed record (validated); raises SchemaError for a poison message."""
        return decode(self.value, model_for(self.schema))


@dataclass(frozen=True, slots=True)
class ReplayCompleted:
    """Emitted once when a replay that continues into live data has caught up."""

    timestamp_ms: int
    records: int
