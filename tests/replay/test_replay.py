"""Replay: a recorded window comes back complete, in one deterministic event-time order."""
from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time

import orjson
import pytest
from confluent_kafka import Consumer, Producer

from deltastream.clients import consumer_config, producer_config
from producers.feed.run import FeedOptions, run_feed
from producers.replay.api import TopicRepublisher, replay, replay_to_callback
from producers.replay.files import export_records, read_records
from producers.replay.mongo_source import mongo_records
from producers.replay.pacing import paced
from producers.replay.record import ReplayCompleted, ReplayRecord
from schemas.codec import decode_dict
from schemas.topics import MARKET_OPTION_CHAINS, MARKET_UNDERLYING, MONGO_COLLECTIONS

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.timezone.utc)
SNAPSHOTS = 20


@pytest.fixture(scope="module")
def recorded(stack, tmp_path_factory):
    """A 20-second window of the feed (simulated clock), recorded under its own prefix."""
    prefix = f"rec{int(time.time() * 1000) % 10**8}."
    settings = stack.with_settings(topic_prefix=prefix, products=["NIFTY", "SPY"], feed_strikes_per_side=2,
                                   feed_expiries=2, feed_seed=3, feed_publish_quotes=False)
    stats = run_feed(settings, FeedOptions(snapshots=SNAPSHOTS, realtime=False, start=T0), stop=threading.Event())
    assert stats.failed == 0
    topics = [prefix + MARKET_UNDERLYING, prefix + MARKET_OPTION_CHAINS]
    return settings, topics, stats.produced


def window(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def test_replay_returns_the_whole_window_in_event_time_order(recorded):
    settings, topics, produced = recorded
    records = list(replay(settings, topics, T0, window(SNAPSHOTS)))
    assert len(records) == produced
    orders = [r.order for r in records]
    assert orders == sorted(orders)
    assert len({(r.topic, r.partition, r.offset) for r in records}) == produced
    typed = [r.as_record() for r in records]  # every record decodes to its schema
    assert {type(t).__name__ for t in typed} == {"UnderlyingTick", "OptionChain"}


def test_replay_is_deterministic_across_runs(recorded):
    settings, topics, _ = recorded
    first = [(r.topic, r.partition, r.offset) for r in replay(settings, topics, T0, window(SNAPSHOTS))]
    second = [(r.topic, r.partition, r.offset) for r in replay(settings, topics, T0, window(SNAPSHOTS))]
    assert first == second


def test_replay_stops_at_the_window_edges(recorded):
    settings, topics, produced = recorded
    start, end = window(5), window(9.5)
    records = list(replay(settings, topics, start, end))
    per_snapshot = produced // SNAPSHOTS
    assert len(records) == 5 * per_snapshot  # snapshots at +5s .. +9s
    assert all(start <= r.timestamp <= end for r in records)
    event_times = {decode_dict(r.value)["timestamp"] for r in records}
    assert min(event_times).startswith("2026-11-23T04:00:05")


def test_republish_into_a_prefix_keeps_keys_headers_and_event_time(recorded, unique):
    settings, topics, produced = recorded
    republish = TopicRepublisher(settings, f"rp{unique}.")
    count = replay_to_callback(settings, republish, topics, T0, window(SNAPSHOTS))
    assert count == produced and republish.flush(30) == 0 and republish.failed == 0
    again = list(replay(settings, [f"rp{unique}." + t for t in topics], T0, window(SNAPSHOTS)))
    original = sorted((r.topic, r.key, r.value, r.headers, r.timestamp_ms)
                      for r in replay(settings, topics, T0, window(SNAPSHOTS)))
    copied = sorted((r.topic.removeprefix(f"rp{unique}."), r.key, r.value, r.headers, r.timestamp_ms)
                    for r in again)
    assert copied == original


def test_pacing_follows_event_time_scaled_by_speed():
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    records = [ReplayRecord("t", 0, i, 1_000_000 + i * 500, None, b"{}") for i in range(61)]  # a 30 s window
    out = list(paced(records, 10.0, lambda r: r.timestamp_ms, clock=lambda: clock[0], sleep=sleep))
    assert out == records
    assert sum(slept) == pytest.approx(3.0)  # a tenth of the window
    with pytest.raises(ValueError):
        list(paced(records, 0, lambda r: r.timestamp_ms))


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl"])
def test_export_and_replay_from_file(recorded, tmp_path, suffix):
    settings, topics, produced = recorded
    path = tmp_path / f"window{suffix}"
    assert export_records(replay(settings, topics, T0, window(SNAPSHOTS)), path) == produced
    original = list(replay(settings, topics, T0, window(SNAPSHOTS)))
    restored = list(read_records(path, topics, int(T0.timestamp() * 1000), int(window(SNAPSHOTS).timestamp() * 1000)))
    assert [r.order for r in restored] == [r.order for r in original]
    assert [orjson.loads(r.value) for r in restored] == [orjson.loads(r.value) for r in original]
    assert [(r.key, r.headers) for r in restored] == [(r.key, r.headers) for r in original]
    from_api = list(replay(settings, topics, window(10), window(SNAPSHOTS), source=path))
    assert len(from_api) == len([r for r in original if r.timestamp >= window(10)])


def test_replay_from_mongodb_history(recorded, sinks_mongo, unique):
    settings, topics, _ = recorded
    from deltastream.clients import mongo_client
    from schemas.records import as_utc

    # A database of its own (other tests store records of the same event times).
    mongo_settings = settings.model_copy(update={"mongo_url": sinks_mongo.url, "mongo_db": f"replay_{unique}"})
    db = mongo_client(mongo_settings)[mongo_settings.mongo_db]
    originals = list(replay(settings, topics, T0, window(SNAPSHOTS)))
    for r in originals:  # stored as the Mongo sink stores them: _id = event_id, real datetimes
        doc = decode_dict(r.value)
        doc["_id"] = doc["event_id"]
        doc["timestamp"] = as_utc(dt.datetime.fromisoformat(doc["timestamp"].replace("Z", "+00:00")))
        db[MONGO_COLLECTIONS[r.topic.split(".", 1)[1]]].replace_one({"_id": doc["_id"]}, doc, upsert=True)
    history = list(mongo_records(mongo_settings,
                                 [MARKET_UNDERLYING, MARKET_OPTION_CHAINS], T0, window(SNAPSHOTS)))
    assert len(history) == len(originals)
    assert [r.timestamp_ms for r in history] == sorted(r.timestamp_ms for r in originals)
    assert sorted(orjson.loads(r.value)["event_id"] for r in history) == \
        sorted(orjson.loads(r.value)["event_id"] for r in originals)


def test_replay_continues_into_live_data_after_a_marker(stack, unique):
    topic = f"live{unique}"
    settings = stack.settings
    producer = Producer(producer_config(settings))
    base = int(T0.timestamp() * 1000)
    for i in range(5):
        producer.produce(topic, b'{"n": %d}' % i, b"k", timestamp=base + i)
    producer.flush(10)
    items = iter(replay(settings, [topic], T0, None))
    head = [next(items) for _ in range(6)]
    assert [type(x) for x in head] == [ReplayRecord] * 5 + [ReplayCompleted]
    assert head[-1].records == 5
    producer.produce(topic, b'{"n": 5}', b"k", timestamp=base + 10_000)
    producer.flush(10)
    live = next(items)
    assert isinstance(live, ReplayRecord) and orjson.loads(live.value) == {"n": 5}


@pytest.mark.parametrize("args,reason", [
    (["--topics", "market.underlying", "--start", "yesterday"], "is not a time"),
    (["--topics", "no.such.topic", "--start", "-1m"], "does not exist"),
    (["--topics", "market.underlying", "--start", "-1m", "--source", "/nope.parquet"], "no such file"),
])
def test_replay_command_rejects_bad_input_with_a_reason(stack, tmp_path, args, reason):
    result = subprocess.run([sys.executable, "-m", "deltastream", "replay", "--quiet", *args], env=stack.env,
                            cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert reason in result.stderr and "Traceback" not in result.stderr
