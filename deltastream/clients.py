"""Kafka, MongoDB and Redis client configuration, built in one place from the settings.

The broker profile lives here and nowhere else: the embedded Tansu broker reports a wrong
high watermark for multi-record batches and is slow to admit group members (DESIGN.md,
"Known limits"), so its profile uses short session timeouts and produces one record per
batch wherever a reader needs the exact end of a topic (Faust's table changelogs), and
batches elsewhere, with `end_offsets` giving exact ends; real Kafka gets linger and
compression for throughput.
"""
from __future__ import annotations

import logging
import time
from typing import Any, Sequence

from deltastream.settings import BrokerProfile, Settings

log = logging.getLogger(__name__)

# Tansu holds a fetch for most of fetch.wait.max.ms even when records arrive meanwhile
# (measured at 50 records/s, produce → consume: 500 ms → p50 114 / p99 247 ms, 100 ms →
# 28 / 53 ms, 35 ms → 8 / 15 ms, 20 ms → 4 / 8 ms), and a fetch of a backlog brings less the
# shorter the wait (the Redis sink bench's three topics: bare consume 55k records/s at 100 ms,
# 44k at 35; one topic at 20 ms: 38k). One wait for every consumer, the live path's (Redis
# sink, Faust workers) included: Tansu's cost per fetch grows with the batches a partition
# holds and its topics are never trimmed, so 20 ms fetches made its CPU climb through a run
# twice as fast as 100 ms, and the loaded broker cost more latency than the shorter wait
# saved (feed → WebSocket p50/p99 at 5,000 quotes/s: 67/154 ms at 20, 49/101 at 100).
# README "Known limits" has the climb's figures.
EMBEDDED_FETCH_WAIT_MS = 100
# The Redis sink's live lane (the topics published to socket rooms, 12 partitions) waits
# less: Tansu re-reads a waiting fetch at half the time left (0, W/2, 3W/4, ...), so a
# record landing just after a read waits up to W/2 (one record on an idle broker: max 51 ms
# at 100, 13 at 20). Lanes and 40 ms, feed -> WebSocket at 10k quotes/s, p50/p99 in
# alternating runs: 49-55/104-108 ms vs 73-76/126-141; Tansu's CPU over a make-up run unchanged.
EMBEDDED_LIVE_FETCH_WAIT_MS = 40
# Readers no live view waits for (the MongoDB sink, whose fetches name every topic) fetch a
# fifth as often: each fetch costs Tansu time in proportion to the batches of every
# partition it names (pipeline bench at 10k quotes/s: WebSocket p99 236 -> 125-145 ms).
EMBEDDED_BULK_FETCH_WAIT_MS = 500
# Tansu admits a joining member after ~half the session timeout; keep it short.
_EMBEDDED_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000,
                   "fetch.wait.max.ms": EMBEDDED_FETCH_WAIT_MS}
_KAFKA_GROUP = {"session.timeout.ms": 45000, "heartbeat.interval.ms": 3000}


def producer_config(settings: Settings, *, batched: bool = False, **overrides: Any) -> dict[str, Any]:
    """confluent-kafka Producer config: acks=all, tuned per broker profile.

    Embedded profile: one record per batch unless `batched`. Tansu reports a partition's
    end offset as the last batch's base offset + 1 (measured: 44 records in batches of up to
    10 → end 42), which Faust's table recovery reads up to (it would lose the last batch's
    updates), so changelogs and any topic whose readers trust "latest" stay unbatched. But a
    one-record batch is one produce round trip on Tansu: 6.7k records/s from one producer,
    against 250-330k/s batched; the feed and the processors' outputs are `batched`, and our
    readers of those topics take ends from `end_offsets`.

    Real Kafka gets the idempotent producer. Tansu forgets producer ids when it restarts
    (memory storage) and an idempotent producer then retries forever without delivering
    (measured: 100 of 100 records stuck after a broker restart; 0 stuck without
    idempotence), so the embedded profile relies on idempotent writes downstream
    (deterministic event ids) instead.
    """
    embedded = settings.profile is BrokerProfile.embedded
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_servers,
        "enable.idempotence": not embedded,
        "acks": "all",
        "client.id": "deltastream",
        # Retry for up to two minutes through a broker outage before reporting failure.
        "message.timeout.ms": 120_000,
        "queue.buffering.max.messages": 1_000_000,
        "queue.buffering.max.kbytes": 1_048_576,
    }
    if embedded:
        # lz4 even for one-record batches: a 30 KB chain snapshot shrinks ~5x, and bytes,
        # not requests, limit Tansu (measured 30k → 117k quotes/s in chain snapshots).
        # linger 5 ms, not 1: a producer writing records one by one (ticks at 2,500/s) made
        # a batch of 1-2 records per ms, and Tansu's fetch cost grows with the batches a
        # partition holds: a tail reader fell behind within seconds (one hop p50 0.9 s after
        # 10 s; with 5 ms: 13 ms, flat). Bursts (the feed's snapshots) batch either way.
        conf.update({"batch.num.messages": 10_000 if batched else 1, "linger.ms": 5 if batched else 0,
                     "compression.type": "lz4"})
    else:
        conf.update({"linger.ms": 50, "compression.type": "lz4", "batch.size": 1_000_000})
    conf.update(overrides)
    return conf


def consumer_config(settings: Settings, group_id: str, **overrides: Any) -> dict[str, Any]:
    """confluent-kafka Consumer config; offsets are committed by the caller after work holds."""
    conf: dict[str, Any] = {
        "bootstrap.servers": settings.kafka_servers,
        "group.id": group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "enable.partition.eof": False,
    }
    conf.update(_EMBEDDED_GROUP if settings.profile is BrokerProfile.embedded else _KAFKA_GROUP)
    conf.update(overrides)
    return conf


def live_fetch_wait(settings: Settings) -> dict[str, Any]:
    """Consumer overrides for the live path (what socket clients wait for): on the embedded
    broker it waits `EMBEDDED_LIVE_FETCH_WAIT_MS` per fetch; elsewhere nothing changes."""
    return _embedded_fetch_wait(settings, EMBEDDED_LIVE_FETCH_WAIT_MS)


def bulk_fetch_wait(settings: Settings) -> dict[str, Any]:
    """Consumer overrides for a bulk reader (history stores): on the embedded broker it
    waits `EMBEDDED_BULK_FETCH_WAIT_MS` per fetch; elsewhere nothing changes."""
    return _embedded_fetch_wait(settings, EMBEDDED_BULK_FETCH_WAIT_MS)


def _embedded_fetch_wait(settings: Settings, wait_ms: int) -> dict[str, Any]:
    return {"fetch.wait.max.ms": wait_ms} if settings.profile is BrokerProfile.embedded else {}


class TailGaps:
    """Re-reads records the embedded broker showed a tail reader out of order.

    Tansu 0.6 (measured; `tests/foundation/test_tansu_gaps.py` reproduces it): when two
    connections produce to one partition while a consumer reads at its end, the consumer
    sometimes gets offset n+1 before n is readable, and its position moves past n: 1 to 3
    of 8,000 records never reached it, though a later read finds all of them. With
    one producer per partition it does not happen; but two processor workers, or every
    process shipping logs, write the same partitions. DeltaStream's topics have contiguous
    offsets (no transactions, no compaction), so on the embedded profile a jump means "not
    visible yet": the reader seeks back to the offset it expected, drops what it got after
    the jump and reads again. A gap still there after `patience` seconds is accepted and
    logged (it would be a real hole). Off on real Kafka, where transaction markers and
    compaction leave legitimate gaps.

    `filter` takes what one `consume()` returned and gives back what to use; a consumer in a
    group calls `forget` for partitions assigned or revoked (their position starts anew)."""

    def __init__(self, consumer: Any, settings: Settings, patience: float = 10.0) -> None:
        self.consumer = consumer
        self.enabled = settings.profile is BrokerProfile.embedded
        self.patience = patience
        self.refetched = 0  # seeks back (for stats and tests)
        self.accepted = 0  # gaps given up on
        self._next: dict[tuple[str, int], int] = {}
        self._since: dict[tuple[str, int], tuple[int, float]] = {}

    def filter(self, messages: list[Any]) -> list[Any]:
        if not self.enabled or not messages:
            return messages
        keep, rewound = [], set()
        nxt = self._next
        for msg in messages:
            if msg.error() is not None:
                keep.append(msg)
                continue
            tp = (msg.topic(), msg.partition())
            if tp in rewound:
                continue
            offset, expected = msg.offset(), nxt.get(tp)
            if expected is not None and offset > expected and self._seek_back(tp, expected, offset):
                rewound.add(tp)
                continue
            nxt[tp] = offset + 1
            keep.append(msg)
        return keep

    def forget(self, tps: Any) -> None:
        for tp in tps:
            self._next.pop(tp, None)
            self._since.pop(tp, None)

    def _seek_back(self, tp: tuple[str, int], expected: int, offset: int) -> bool:
        from confluent_kafka import TopicPartition  # deferred: keeps this module import-light

        now = time.monotonic()
        since = self._since.get(tp)
        if since is None or since[0] != expected:
            self._since[tp] = since = (expected, now)
        if now - since[1] > self.patience:
            del self._since[tp]
            self.accepted += 1
            log.error("%s[%d]: offsets %d-%d still unreadable after %.0fs; going on without them",
                      tp[0], tp[1], expected, offset - 1, self.patience)
            return False
        self.consumer.seek(TopicPartition(tp[0], tp[1], expected))
        self.refetched += 1
        return True


def watermarks(settings: Settings, consumer: Any, tps: Sequence[tuple[str, int]],
               timeout: float = 10.0) -> dict[tuple[str, int], tuple[int, int]]:
    """(low, end) offsets of each partition, the end (next offset to be written) exact on both
    profiles.

    Tansu answers the last batch's base offset + 1 (see `producer_config`), so on the
    embedded profile a non-empty partition's last batch is read (from that offset, by a
    throw-away consumer) and its last record + 1 is the end: at least the end when this was
    called, at most the end when it returns."""
    from confluent_kafka import Consumer, TopicPartition

    result = {(t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=timeout, cached=False)
              for t, p in tps}
    probe_from = {tp: high - 1 for tp, (low, high) in result.items() if high > max(low, 0)}
    if settings.profile is not BrokerProfile.embedded or not probe_from:
        return result
    import uuid

    probe = Consumer(consumer_config(settings, f"deltastream-end-{uuid.uuid4().hex[:8]}",
                                     **{"fetch.wait.max.ms": 10}))
    try:
        probe.assign([TopicPartition(t, p, o) for (t, p), o in probe_from.items()])
        unseen, deadline = set(probe_from), time.monotonic() + timeout
        # a batch arrives whole in one fetch: once a partition answered, what is queued
        # locally holds the rest of its last batch (and maybe newer records: still true ends)
        while unseen and time.monotonic() < deadline:
            for msg in probe.consume(10_000, 0.5) + probe.consume(10_000, 0):
                if msg.error() is None:
                    tp = (msg.topic(), msg.partition())
                    low, end = result[tp]
                    result[tp] = (low, max(end, msg.offset() + 1))
                    unseen.discard(tp)
        if unseen:
            raise TimeoutError(f"could not read the last batch of {sorted(unseen)} in {timeout}s")
    finally:
        probe.close()
    return result


def end_offsets(settings: Settings, consumer: Any, tps: Sequence[tuple[str, int]],
                timeout: float = 10.0) -> dict[tuple[str, int], int]:
    """The exact end offset of each partition (`watermarks` without the lows)."""
    return {tp: end for tp, (_low, end) in watermarks(settings, consumer, tps, timeout).items()}


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka_servers}


def faust_broker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App`` that depend on the broker profile."""
    common: dict[str, Any] = {"broker": f"kafka://{settings.kafka_servers}"}
    if settings.profile is BrokerProfile.embedded:
        return common | {"producer_max_batch_size": 1, "broker_session_timeout": 6,
                         "broker_heartbeat_interval": 1}
    return common | {"producer_linger": 0.05, "producer_compression_type": "lz4"}  # aiokafka reads/writes lz4 via cramjam


def faust_fetch_max_wait_ms(settings: Settings) -> int:
    """How long the Faust worker's (aiokafka) fetches may wait for data; see
    `stream_processors.faust_fixes.set_fetch_max_wait` for the figures on Tansu."""
    return EMBEDDED_FETCH_WAIT_MS if settings.profile is BrokerProfile.embedded else 500


def mongo_client(settings: Settings, **kwargs: Any):
    """A pymongo client; large batches against nx-27017 need generous socket timeouts."""
    import pymongo

    opts: dict[str, Any] = {
        "serverSelectionTimeoutMS": 5000,
        "connectTimeoutMS": 10_000,
        "socketTimeoutMS": 60_000,
        "tz_aware": True,
    }
    opts.update(kwargs)
    return pymongo.MongoClient(settings.mongo_uri, **opts)


def redis_client(settings: Settings, **kwargs: Any):
    import redis

    opts: dict[str, Any] = {"socket_connect_timeout": 5, "health_check_interval": 30}
    opts.update(kwargs)
    return redis.Redis.from_url(settings.redis_uri, **opts)


def async_redis_client(settings: Settings, **kwargs: Any):
    import redis.asyncio as aioredis

    opts: dict[str, Any] = {"socket_connect_timeout": 5, "health_check_interval": 30}
    opts.update(kwargs)
    return aioredis.Redis.from_url(settings.redis_uri, **opts)
