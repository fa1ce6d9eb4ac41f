"""What a batch publishes (outputs and DLQ records), and the retry policy for sending it.

Within one batch a given output event id appears at most once (processors coalesce, e.g.
one update per OHLC window); `stream_processors.app` sends each batch, retries what failed
with exponential backoff and, after a failure, sends later in-flight batches again, so the
last version of a record on its topic is always its newest.
"""
from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any

from schemas.codec import encode, encode_dict, headers
from schemas.records import DlqRecord, Record
from stream_processors.decode import Poison

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Retry:
    attempts: int = 8
    first_delay: float = 0.1
    max_delay: float = 5.0

    def delays(self):
        delay = self.first_delay
        for _ in range(self.attempts - 1):
            yield delay
            delay = min(delay * 2, self.max_delay)


@dataclass
class Message:
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]
    timestamp_ms: int = 0  # Kafka message time: the record's event time (0: the broker's now)
    partition: int | None = None  # None: by the key's hash (the producer's partitioner)


@dataclass
class Outbox:
    """Messages of one batch."""

    retry: Retry = field(default_factory=Retry)
    messages: list[Message] = field(default_factory=list)

    def add(self, topic: str, key: str, value: bytes, hdrs: list[tuple[str, bytes]],
            timestamp_ms: int = 0) -> None:
        self.messages.append(Message(topic, key.encode(), value, hdrs, timestamp_ms))

    def add_dict(self, topic: str, key: str, record: dict[str, Any], schema: str) -> None:
        # Stamped with event time, like the feed's records: a time-range replay of an
        # analytics topic (offsets_for_times, the replay filter) then selects by event time.
        self.add(topic, key, encode_dict(record), _headers(schema), _event_ms(record.get("timestamp")))

    def __len__(self) -> int:
        return len(self.messages)


_ms_cache: dict[str, int] = {}  # outputs of a batch share few event times


def _event_ms(value: Any) -> int:
    if isinstance(value, str):
        ms = _ms_cache.get(value)
        if ms is not None:
            return ms
        try:
            ms = int(dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return 0
        if len(_ms_cache) > 50_000:
            _ms_cache.clear()
        _ms_cache[value] = ms
        return ms
    if isinstance(value, dt.datetime):
        return int(value.timestamp() * 1000)
    return 0


_HEADERS: dict[str, list[tuple[str, bytes]]] = {}


def _headers(schema: str) -> list[tuple[str, bytes]]:
    try:
        return _HEADERS[schema]
    except KeyError:
        return _HEADERS.setdefault(schema, headers(schema))


def dlq_record(poison: Poison, service: str) -> DlqRecord:
    src = poison.src
    when = dt.datetime.fromtimestamp(src.timestamp, dt.timezone.utc) if src.timestamp else None
    return DlqRecord.from_message(topic=src.topic, partition=src.partition, offset=src.offset,
                                  key=src.key, value=src.value, reason=poison.reason,
                                  error_type=poison.error_type, service=service, timestamp=when)


def add_dlq(outbox: Outbox, dlq_topic: str, poison: Poison, service: str) -> Record:
    record = dlq_record(poison, service)
    outbox.add(dlq_topic, record.key(), encode(record), _headers(record.SCHEMA))
    return record
