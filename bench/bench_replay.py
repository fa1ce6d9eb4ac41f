"""Replay throughput at max speed: to a callback and into prefixed topics.

    python -m bench.bench_replay [--records 200000]
"""
from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deltastream.clients import consumer_config, producer_config
from producers.replay.api import TopicRepublisher, replay
from producers.replay.files import export_records, read_records
from producers.replay.kafka_source import _Merge
from producers.replay.pacing import paced
from deltastream.runtime.stack import start_stack

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.timezone.utc)


def preload(settings, topic: str, n: int) -> None:
    admin = AdminClient({"bootstrap.servers": settings.kafka_servers})
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(10)
    producer = Producer(producer_config(settings, batched=True))  # as the feed writes
    base = int(T0.timestamp() * 1000)
    value = b'{"product":"NIFTY","price":24012.35,"timestamp":"2026-11-23T04:00:00.000000Z","tick_id":1,"event_id":"NIFTY:1"}'
    for i in range(n):
        while True:
            try:
                producer.produce(topic, value, str(i % 64).encode(), timestamp=base + i)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)


def raw_consume(settings, topic: str, expected: int) -> int:
    consumer = Consumer(consumer_config(settings, "bench-raw"))
    consumer.assign([TopicPartition(topic, p, 0) for p in range(6)])
    count = 0
    while count < expected:
        count += len(consumer.consume(5000, 1.0))
    consumer.close()
    return count


def merge_only(records: list) -> int:
    """The k-way merge and pacing pass on records already in memory."""
    parts = {tp: i for i, tp in enumerate(sorted({(r.topic, r.partition) for r in records}))}
    merge = _Merge([False] * len(parts))
    for r in records:
        merge.push(parts[(r.topic, r.partition)], r)
    for i in parts.values():
        merge.caught_up(i)
    return sum(1 for _ in paced(merge.ready(), None, lambda r: r.timestamp_ms))


def timed(fn) -> tuple[int, float]:
    start = time.perf_counter()
    count = fn()
    return count, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=100_000)
    args = parser.parse_args()
    end = T0 + dt.timedelta(days=1)
    with tempfile.TemporaryDirectory() as tmp, start_stack(Path(tmp)) as stack:
        # One record per produced batch (the embedded profile): with multi-record batches
        # Tansu reports a high watermark short of the real end and a bounded replay stops there.
        settings = stack.settings
        preload(settings, "bench.replay", args.records)
        rows = []
        n, s = timed(lambda: sum(1 for _ in replay(settings, ["bench.replay"], T0, end)))
        rows.append(("Kafka -> callback (merge of 6 partitions)", n, s))
        fetched = sorted(replay(settings, ["bench.replay"], T0, end), key=lambda r: (r.partition, r.offset))
        n, s = timed(lambda: merge_only(fetched))
        rows.append(("  merge alone (records already fetched)", n, s))
        n_raw, s_raw = timed(lambda: raw_consume(settings, "bench.replay", args.records))
        rows.append(("  broker alone: plain consumer, no merge", n_raw, s_raw))
        parquet = Path(tmp) / "window.parquet"
        n, s = timed(lambda: export_records(replay(settings, ["bench.replay"], T0, end), parquet))
        rows.append(("Kafka -> Parquet export", n, s))
        n, s = timed(lambda: sum(1 for _ in read_records(parquet)))
        rows.append(("Parquet -> callback", n, s))
        republish = TopicRepublisher(settings, "bench.out.")

        def to_topic() -> int:
            count = 0
            for item in replay(settings, ["bench.replay"], T0, end):
                republish(item)
                count += 1
            republish.flush(120)
            return count
        n, s = timed(to_topic)
        rows.append(("Kafka -> prefixed topic (embedded profile)", n, s))
    print(f"\nreplay at max speed, {args.records:,} records")
    print(f"{'path':<45} {'records':>10} {'records/s':>12}")
    for name, n, s in rows:
        print(f"{name:<45} {n:>10,} {n / s:>12,.0f}")
    print("target: >= 100,000 records/s to a callback on one core")


if __name__ == "__main__":
    main()
