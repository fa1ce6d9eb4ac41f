"""Outputs go through a small pool of librdkafka producers, not Faust's aiokafka producer.

On the embedded broker a one-record batch is one produce round trip, and the table
changelogs must be written that way (Faust's recovery reads up to Tansu's end offset, wrong
after a multi-record batch: `deltastream.clients.producer_config`). aiokafka keeps one
produce request in flight per broker and puts at most one batch per partition in it, so one
record per batch capped it at 635 enriched ticks/s and 264 chain analytics/s (3-partition
output topics). librdkafka pipelines requests, but Tansu answers one connection's requests
one at a time: one producer did 4.7k one-record batches/s into a 3-partition topic, three
producers (one connection each) 7.9k/s. So each (topic, partition) is served by one producer
of a pool (order within a partition is kept) and the partition is chosen here, by CRC-32 of
the key like librdkafka's default partitioner (or given by the message: table changelogs).
The processors use two pools: outputs `batched` (ticks drained 2.5k → 5.6k/s) and the
changelogs one record per batch (`stream_processors.state.ChangelogWriter`; through Faust's
producer a commit after a batch of quotes, ~2,000 writes, took 3-4 s and stalled every
stream meanwhile).

`send` hands a batch to librdkafka and returns an awaitable that resolves, on the asyncio
loop, with the messages that failed (empty when all were acknowledged).
"""
from __future__ import annotations

import asyncio
import zlib
from typing import Any, Sequence

from confluent_kafka import KafkaException, Producer

from deltastream.clients import producer_config
from deltastream.settings import Settings


POOL = 4
IDLE_POLL = 0.05  # seconds between polls with nothing in flight
BUSY_POLL = 0.001  # ... and with deliveries outstanding


class OutputProducer:
    """Delivery callbacks are served on the asyncio loop (a poll every millisecond while
    anything is in flight): with per-message callbacks on background threads, the threads
    and the loop fought over the GIL and a produce() call took ~55 µs instead of ~5 µs."""

    def __init__(self, settings: Settings, client_id: str, pool: int = POOL, batched: bool = False) -> None:
        # librdkafka retries transient errors itself for up to message.timeout.ms; what
        # fails after that comes back to the caller, which backs off and sends again.
        conf = producer_config(settings, batched=batched,
                               **{"client.id": client_id, "message.timeout.ms": 30_000})
        self._producers = [Producer(conf) for _ in range(pool)]
        self._partitions: dict[str, int] = {}
        self._outstanding = 0
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _poll(self) -> None:
        for p in self._producers:
            p.poll(0)
        self._timer = self._loop.call_later(BUSY_POLL if self._outstanding else IDLE_POLL, self._poll)

    def _route(self, topic: str, key: bytes) -> tuple[int, Producer]:
        n = self._partitions.get(topic)
        if n is None:
            meta = self._producers[0].list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise KafkaException(f"no metadata for topic {topic!r}")
            n = self._partitions[topic] = len(meta.partitions)
        partition = zlib.crc32(key) % n
        return partition, self._producers[zlib.crc32(topic.encode(), partition) % len(self._producers)]

    def send(self, messages: Sequence[Any]) -> asyncio.Future:
        """Produce every message (topic, key, value, headers); the future gets the failed ones."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            self._loop = loop
            self._timer = loop.call_soon(self._poll)
        done: asyncio.Future = loop.create_future()
        if not messages:
            done.set_result([])
            return done
        pending = [len(messages)]
        failed: list[tuple[Any, Any]] = []  # (message, KafkaError or exception)

        def delivered(msg: Any, err: Any) -> None:
            self._outstanding -= 1
            if err is not None:
                failed.append((msg, err))
            pending[0] -= 1
            if pending[0] == 0 and not done.done():
                done.set_result(failed)

        self._outstanding += len(messages)
        for m in messages:
            try:
                if m.partition is None:
                    partition, producer = self._route(m.topic, m.key)
                else:
                    partition = m.partition
                    producer = self._producers[zlib.crc32(m.topic.encode(), partition) % len(self._producers)]
            except KafkaException as exc:
                delivered(m, exc)
                continue
            while True:
                try:
                    producer.produce(m.topic, m.value, m.key, partition=partition, headers=m.headers,
                                     timestamp=m.timestamp_ms,
                                     on_delivery=lambda err, _msg, m=m: delivered(m, err))
                    break
                except BufferError:  # local queue full: let deliveries drain
                    producer.poll(0.01)
                except KafkaException as exc:  # could not even be queued
                    delivered(m, exc)
                    break
        return done

    def close(self, timeout: float = 30.0) -> int:
        """Flush and stop; returns how many messages were still undelivered."""
        if self._timer is not None:
            self._timer.cancel()
        return sum(p.flush(timeout) for p in self._producers)
