"""The feed into the real broker: every record on every topic matches its published schema."""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import jsonschema
from confluent_kafka import Consumer

from deltastream.clients import consumer_config
from producers.feed.publisher import FeedPublisher
from producers.feed.run import FeedOptions, run_feed
from schemas.topics import MARKET_OPTION_CHAINS, MARKET_OPTION_QUOTES, MARKET_UNDERLYING

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas" / "json"
T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.timezone.utc)


def validators() -> dict[str, jsonschema.Draft202012Validator]:
    out = {}
    for path in SCHEMA_DIR.glob("*.json"):
        schema = json.loads(path.read_text())
        out[path.stem] = jsonschema.Draft202012Validator(schema)
    return out


def consume_all(settings, topics: list[str], expected: int, group: str, timeout: float = 60) -> list:
    consumer = Consumer(consumer_config(settings, group))
    consumer.subscribe(topics)
    out, deadline = [], time.monotonic() + timeout
    try:
        while len(out) < expected and time.monotonic() < deadline:
            for msg in consumer.consume(1000, 0.5):
                if not msg.error():
                    out.append(msg)
    finally:
        consumer.close()
    return out


def test_feed_publishes_schema_valid_records_with_keys_and_headers(stack, unique):
    settings = stack.with_settings(topic_prefix=f"t{unique}.", products=["NIFTY", "AAPL"],
                                   feed_strikes_per_side=3, feed_expiries=2, feed_seed=11)
    stats = run_feed(settings, FeedOptions(snapshots=3, realtime=False, start=T0),
                     stop=threading.Event())
    assert stats.failed == 0 and stats.delivered == stats.produced
    # 2 products × 3 snapshots ticks; 2 × 2 chains × 3 snapshots; 7 strikes × 2 sides per chain
    assert stats.produced == 6 + 12 + 12 * 14

    topics = [settings.topic(t) for t in (MARKET_UNDERLYING, MARKET_OPTION_QUOTES, MARKET_OPTION_CHAINS)]
    messages = consume_all(settings, topics, stats.produced, f"check-{unique}")
    assert len(messages) == stats.produced
    checks = validators()
    seen_ids = set()
    for msg in messages:
        hdrs = dict(msg.headers())
        assert hdrs["content-type"] == b"application/json"
        schema_id = hdrs["ds-schema"].decode()
        record = json.loads(msg.value())
        errors = sorted(checks[schema_id].iter_errors(record), key=str)
        assert not errors, f"{schema_id}: {errors[0].message}"
        key = msg.key().decode()
        if msg.topic() == topics[0]:
            assert key == record["product"]
        elif msg.topic() == topics[1]:
            assert key == record["symbol"] and record["symbol"].startswith(record["product"])
        else:
            assert key == f"{record['product']}|{record['expiry']}"
            assert len(record["calls"]) == len(record["strikes"]) == 7
        assert record["event_id"] not in seen_ids
        seen_ids.add(record["event_id"])


def test_feed_command_rejects_unknown_product(stack, tmp_path):
    env = stack.env | {"DELTASTREAM_PRODUCTS": '["NIFTY","DOGE"]'}
    result = subprocess.run([sys.executable, "-m", "deltastream", "feed", "--snapshots", "1"], env=env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "unknown product 'DOGE'" in result.stderr and "Traceback" not in result.stderr


def test_a_real_time_snapshot_is_sent_at_once_not_after_the_linger(stack, unique):
    """On the wall clock each snapshot is flushed as soon as it is produced: with a linger far
    longer than the test, its records are acknowledged while the feed still runs."""
    settings = stack.with_settings(topic_prefix=f"t{unique}.", products=["NIFTY"], feed_interval=0.2,
                                   feed_strikes_per_side=1, feed_expiries=1, feed_publish_quotes=False)
    publisher, stop = FeedPublisher(settings, publish_quotes=False, **{"linger.ms": 60_000}), threading.Event()
    feeder = threading.Thread(target=run_feed, args=(settings, FeedOptions(progress_every=1e9)),
                              kwargs=dict(stop=stop, publisher=publisher), daemon=True)
    feeder.start()
    try:
        deadline = time.monotonic() + 30
        while publisher.stats.delivered < 4 and time.monotonic() < deadline:  # two snapshots
            time.sleep(0.05)
        assert publisher.stats.delivered >= 4, publisher.stats
        assert feeder.is_alive()  # acknowledged while running, not by the flush at exit
    finally:
        stop.set()
        feeder.join(30)
