"""Kafka, MongoDB and Redis client configuration, built in one place from the settings.

The broker profile lives here and nowhere else: the embedded Tansu broker reports a wrong
high watermark for multi-record batches and is slow to admit group members (DESIGN.md,
"Known limits"), so its profile produces one record per batch and uses short session
timeouts; real Kafka gets linger and compression for throughput.
"""
from __future__ import annotations

from typing import Any

from deltastream.settings import BrokerProfile, Settings

# Tansu admits a joining member after ~half the session timeout; keep it short.
# Tansu holds a fetch for most of fetch.wait.max.ms even when records arrive meanwhile
# (measured: 500 ms → p50 114 ms / p99 247 ms from produce to consume; 100 ms → 2 / 5 ms).
_EMBEDDED_GROUP = {"session.timeout.ms": 6000, "heartbeat.interval.ms": 1000, "fetch.wait.max.ms": 100}
_KAFKA_GROUP = {"session.timeout.ms": 45000, "heartbeat.interval.ms": 3000}


def producer_config(settings: Settings, **overrides: Any) -> dict[str, Any]:
    """confluent-kafka Producer config: acks=all, tuned per broker profile.

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
        conf.update({"batch.num.messages": 1, "linger.ms": 0, "compression.type": "lz4"})
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


def admin_config(settings: Settings) -> dict[str, Any]:
    return {"bootstrap.servers": settings.kafka_servers}


def faust_broker_settings(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for ``faust.App`` that depend on the broker profile."""
    common: dict[str, Any] = {"broker": f"kafka://{settings.kafka_servers}"}
    if settings.profile is BrokerProfile.embedded:
        return common | {"producer_max_batch_size": 1, "broker_session_timeout": 6,
                         "broker_heartbeat_interval": 1}
    return common | {"producer_linger": 0.05, "producer_compression_type": "lz4"}  # aiokafka reads/writes lz4 via cramjam


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
