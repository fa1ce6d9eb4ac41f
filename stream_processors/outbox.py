"""What a batch publishes, sent together and acknowledged before the batch's state is kept.

Transient failures (broker unreachable, leader moving, request timeouts) are retried with
exponential backoff; after `attempts` the error propagates and the worker stops, so the
batch is processed again after a restart (at-least-once; outputs carry deterministic event
ids, so a repeat is an idempotent overwrite downstream).

Within one batch a given output event id appears at most once (processors coalesce, e.g.
one update per OHLC window), so retrying only the failed sends cannot reorder two versions
of the same record.
"""
from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from schemas.codec import encode, encode_dict, headers
from schemas.records import DlqRecord, Record
from stream_processors.decode import Poison

log = logging.getLogger(__name__)

Send = Callable[..., Awaitable[Awaitable[Any]]]  # faust producer.send → delivery future


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


@dataclass
class Outbox:
    """Messages of one batch; `send` returns once the broker acknowledged all of them."""

    retry: Retry = field(default_factory=Retry)
    messages: list[Message] = field(default_factory=list)

    def add(self, topic: str, key: str, value: bytes, hdrs: list[tuple[str, bytes]]) -> None:
        self.messages.append(Message(topic, key.encode(), value, hdrs))

    def add_dict(self, topic: str, key: str, record: dict[str, Any], schema: str) -> None:
        self.add(topic, key, encode_dict(record), _headers(schema))

    def __len__(self) -> int:
        return len(self.messages)

    async def send(self, send: Send) -> None:
        pending = self.messages
        delays = self.retry.delays()
        while pending:
            failed: list[Message] = []
            error: BaseException | None = None
            futures = []
            for msg in pending:
                try:
                    futures.append((msg, await send(msg.topic, key=msg.key, value=msg.value,
                                                    partition=None, timestamp=None,
                                                    headers=msg.headers)))
                except Exception as exc:  # could not even be queued
                    failed.append(msg)
                    error = exc
            for msg, fut in futures:
                try:
                    await fut
                except Exception as exc:
                    failed.append(msg)
                    error = exc
            if not failed:
                break
            delay = next(delays, None)
            if delay is None:
                raise RuntimeError(f"{len(failed)} messages undeliverable after "
                                   f"{self.retry.attempts} attempts") from error
            log.warning("%d of %d sends failed (%r); retrying in %.1fs", len(failed), len(pending),
                        error, delay)
            await asyncio.sleep(delay)
            pending = failed
        self.messages = []


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
