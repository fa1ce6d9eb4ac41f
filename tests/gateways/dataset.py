"""The gateway tests' dataset (and the REST benchmark's): what the real pipeline writes
for a simulated-clock market — the feed, the stream-processor worker and both sinks — into
a MongoDB and a Redis of their own (the shared test servers serve every database name from
one file / db 0)."""
from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import orjson

from deltastream.clients import mongo_client, redis_client
from deltastream.settings import Settings
from gateways.logs.shipping import KafkaLogHandler
from schemas.records import OptionChain, UnderlyingTick
from schemas.topics import MARKET_OPTION_CHAINS, MARKET_UNDERLYING
from sinks.run import run_mongo_sink, run_redis_sink
from tests.processors.harness import (T0, Worker, market_messages, processor_settings,
                                      unique_records)
from tests.servers import PrivateMongo, PrivateRedis
from tests.sinks.conftest import SinkThread, feed, wait_until
from tests.stack import Stack

__all__ = ["T0", "Dataset", "PrivateRedis", "pipeline_dataset"]

SNAPSHOTS = 60  # 10 minutes of event time at 10 s per snapshot
INTERVAL = 10.0
JWT_SECRET = "gateway-tests-secret-0123456789abcdef"
SHIPPED_MARKER = "shipped through kafka"


@dataclass
class Dataset:
    settings: Settings
    stack: Stack
    records: dict[str, list[Any]]
    chains: list[OptionChain] = field(default_factory=list)
    ticks: list[UnderlyingTick] = field(default_factory=list)

    def chains_of(self, product: str, expiry: str | None = None) -> list[OptionChain]:
        return [c for c in self.chains if c.product == product
                and (expiry is None or c.expiry.isoformat() == expiry)]

    def expiries(self, product: str) -> list[str]:
        return sorted({c.expiry.isoformat() for c in self.chains_of(product)})


def _complete(settings: Settings, chains: int, products: list[str], last: dt.datetime) -> bool:
    client = mongo_client(settings)
    db = client[settings.mongo_db]
    redis = redis_client(settings)
    try:
        if db.chain_analytics.count_documents({}) < chains or db.option_chains.count_documents({}) < chains:
            return False
        for p in products:
            if db.vol_surfaces.find_one({"product": p, "timestamp": last}) is None:
                return False
            raw = redis.get(f"latest:vol_surface:{p}")
            if raw is None or orjson.loads(raw)["timestamp"] != last.strftime("%Y-%m-%dT%H:%M:%S.%fZ"):
                return False
        return db.logs.count_documents({"message": SHIPPED_MARKER}) > 0
    finally:
        client.close()
        redis.close()


@contextlib.contextmanager
def pipeline_dataset(stack: Stack, base: Path, snapshots: int = SNAPSHOTS, **changes: Any) -> Iterator[Dataset]:
    """Run the pipeline over `snapshots` market snapshots, stop it, yield what it stored."""
    mongo = PrivateMongo(base / "mongo")
    mongo.start()
    redis: PrivateRedis | None = None
    try:
        redis = PrivateRedis(base / "redis").start()
        settings = processor_settings(
            stack, uuid.uuid4().hex[:10], base, feed_interval=INTERVAL, processor_grace_seconds=10.0,
            mongo_url=mongo.url, mongo_db="gateways", redis_url=redis.url, jwt_secret=JWT_SECRET,
            rate_limit_user="100000/minute", rate_limit_ip="100000/minute",
            sink_batch_size=500, sink_max_latency_ms=100, **changes)
        records = _run_pipeline(stack, settings, base, snapshots)
        yield Dataset(settings, stack, records, records[MARKET_OPTION_CHAINS], records[MARKET_UNDERLYING])
    finally:
        if redis is not None:
            redis.kill()
        mongo.kill()


def _run_pipeline(stack: Stack, settings: Settings, base: Path, snapshots: int) -> dict[str, list[Any]]:
    unique = settings.processor_app_id
    worker = Worker(stack, settings, base / "worker.log")
    sinks: list[SinkThread] = []
    shipper = KafkaLogHandler(settings, "gateway-tests")
    try:
        sinks = [SinkThread(run_mongo_sink, settings, f"gw-mongo-{unique}"),
                 SinkThread(run_redis_sink, settings, f"gw-redis-{unique}")]
        worker.wait_for("partitions assigned", timeout=120)
        stats = feed(settings, snapshots)
        assert stats.failed == 0
        # a process log through the shipping handler, Kafka and the MongoDB sink
        shipper.handle(logging.LogRecord("tests.gateways", logging.WARNING, __file__, 1, SHIPPED_MARKER,
                                         None, None))
        records = unique_records(market_messages(settings, snapshots))
        chains = records[MARKET_OPTION_CHAINS]
        last = max(c.timestamp for c in chains)
        wait_until(lambda: _complete(settings, len(chains), settings.products, last), 180,
                   "the pipeline to store every chain, its analytics and surfaces", every=1.0)
        time.sleep(1.0)  # last sink batches (OHLC updates) land
        return records
    finally:
        shipper.close()
        for sink in sinks:
            sink.stop()
        worker.stop()


def gateway_env(dataset, port: int, **extra: str) -> dict[str, str]:
    """Environment of a `deltastream serve api` process reading this dataset's stores."""
    s = dataset.settings
    return {**dataset.stack.env, "DELTASTREAM_MONGO_URL": s.mongo_uri, "DELTASTREAM_REDIS_URL": s.redis_uri,
            "DELTASTREAM_MONGO_DB": s.mongo_db, "DELTASTREAM_JWT_SECRET": s.jwt_secret,
            "DELTASTREAM_DATA_DIR": str(s.data_dir), "DELTASTREAM_TOPIC_PREFIX": s.topic_prefix,
            "DELTASTREAM_PRODUCTS": '["NIFTY","AAPL"]', "DELTASTREAM_API_PORT": str(port), **extra}
