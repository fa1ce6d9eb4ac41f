"""Helpers for the sink tests: a fresh prefix / database / Redis db per test, a paced feed,
sink processes and a private MongoDB server for the outage test."""
from __future__ import annotations

import datetime as dt
import itertools
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

import pytest
from confluent_kafka import Consumer

from deltastream.clients import consumer_config, redis_client
from deltastream.settings import Settings
from producers.feed.run import FeedOptions, run_feed, synthetic_provider
from schemas.codec import decode_dict
from tests.servers import PrivateMongo
from tests.stack import Stack

REPO = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.timezone.utc)
_redis_dbs = itertools.cycle(range(1, 16))  # db 0 is left to the other tests


@pytest.fixture
def sink_settings(stack: Stack, sinks_mongo: "PrivateMongo", unique: str) -> Settings:
    """The shared Kafka and Redis (a flushed db of its own), an nx-27017 with one file per
    database, and this test's own topics and MongoDB database."""
    settings = stack.with_settings(
        topic_prefix=f"s{unique}.", mongo_url=sinks_mongo.url, mongo_db=f"sinks_{unique}",
        redis_url=f"{stack.settings.redis_uri.rsplit('/', 1)[0]}/{next(_redis_dbs)}",
        products=["NIFTY", "SPY"], feed_strikes_per_side=2, feed_expiries=2, feed_seed=7,
        sink_batch_size=200, sink_max_latency_ms=100, sink_retry_backoff_max_seconds=1.0,
        sink_shutdown_seconds=5.0)
    client = redis_client(settings)
    client.flushdb()
    client.close()
    return settings


def feed(settings: Settings, snapshots: int, start: dt.datetime = T0, pace: float = 0.0,
         stop: threading.Event | None = None):
    """Run the feed with a simulated clock (event time from `start`, one snapshot per
    `feed_interval`), waiting `pace` wall seconds between snapshots; returns its stats."""
    options = FeedOptions(snapshots=snapshots, realtime=False, start=start, progress_every=1e9)
    provider = synthetic_provider(settings, options)
    if pace:
        inner = provider.snapshots

        def paced():
            for snapshot in inner():
                yield snapshot
                time.sleep(pace)
        provider.snapshots = paced  # type: ignore[method-assign]
    return run_feed(settings, options, provider, stop=stop or threading.Event())


def read_topics(settings: Settings, topics: list[str], expected: int, timeout: float = 60) -> list:
    """Every message of `topics`, with a throwaway group: at least `expected`, then on until
    the topics stay quiet for a second (a record whose delivery report was lost is still read)."""
    consumer = Consumer(consumer_config(settings, f"reader-{time.monotonic_ns()}"))
    consumer.subscribe([settings.topic(t) for t in topics])
    out, deadline = [], time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            out += [m for m in consumer.consume(500, 0.5) if m.error() is None]
        while batch := [m for m in consumer.consume(500, 1.0) if m.error() is None]:
            out += batch
    finally:
        consumer.close()
    return out


def event_ids(messages) -> list[str]:
    return [decode_dict(m.value())["event_id"] for m in messages]


def wait_until(predicate: Callable[[], bool], timeout: float, what: str, every: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class SinkThread:
    """A sink run in this process (`run_mongo_sink` / `run_redis_sink`) until `stop()`."""

    def __init__(self, run: Callable, settings: Settings, group: str) -> None:
        self.stop_event = threading.Event()
        self.code: int | None = None
        self.thread = threading.Thread(target=self._main, args=(run, settings, group), daemon=True)
        self.thread.start()

    def _main(self, run, settings, group) -> None:
        self.code = run(settings, self.stop_event, group_id=group)

    def stop(self, timeout: float = 30) -> int | None:
        self.stop_event.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "sink did not stop"
        return self.code


def sink_env(settings: Settings, stack: Stack, **extra: str) -> dict[str, str]:
    """Environment for `python -m sinks.run` using these settings' servers and names."""
    env = {**stack.env,
           "DELTASTREAM_KAFKA_BOOTSTRAP": settings.kafka_servers,
           "DELTASTREAM_MONGO_URL": settings.mongo_uri, "DELTASTREAM_REDIS_URL": settings.redis_uri,
           "DELTASTREAM_TOPIC_PREFIX": settings.topic_prefix, "DELTASTREAM_MONGO_DB": settings.mongo_db,
           "DELTASTREAM_SINK_BATCH_SIZE": str(settings.sink_batch_size),
           "DELTASTREAM_SINK_MAX_LATENCY_MS": str(settings.sink_max_latency_ms),
           "DELTASTREAM_SINK_RETRY_BACKOFF_MAX_SECONDS": str(settings.sink_retry_backoff_max_seconds),
           "DELTASTREAM_DATA_DIR": str(settings.data_dir), "PYTHONUNBUFFERED": "1"}
    env.update(extra)
    return env


def start_sink_process(kind: str, group: str, env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "sinks.run", kind, "--group", group], cwd=REPO,
                            env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)


@pytest.fixture
def private_mongo(tmp_path: Path) -> Iterator[PrivateMongo]:
    """A server for one test alone (to stop and start)."""
    mongo = PrivateMongo(tmp_path / "mongo-private")
    mongo.start()
    try:
        yield mongo
    finally:
        mongo.kill()
