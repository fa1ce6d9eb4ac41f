"""Tansu reports a partition's end as its last batch's base offset + 1; `end_offsets` gives
the true end, which replay, the sinks' stale-offset check and our readers rely on."""
from __future__ import annotations

import time

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deltastream.clients import admin_config, consumer_config, end_offsets, producer_config


def produce(settings, topic: str, counts: dict[int, int], *, batched: bool) -> None:
    producer = Producer(producer_config(settings, batched=batched))
    failed: list = []
    for partition, n in counts.items():
        for i in range(n):
            producer.produce(topic, f"{partition}-{i}".encode(), partition=partition,
                             on_delivery=lambda err, _m: err and failed.append(err))
    assert producer.flush(60) == 0 and not failed


def test_end_offsets_are_exact_after_batched_and_unbatched_writes(stack, unique):
    settings = stack.settings
    topic = f"ends-{unique}"
    admin = AdminClient(admin_config(settings))
    admin.create_topics([NewTopic(topic, 4, 1)])[topic].result(30)
    time.sleep(0.5)  # metadata
    tps = [(topic, p) for p in range(4)]
    consumer = Consumer(consumer_config(settings, f"ends-{unique}"))
    try:
        assert end_offsets(settings, consumer, tps) == {tp: 0 for tp in tps}

        produced = {0: 1, 1: 2_000, 2: 777}  # partition 3 stays empty
        produce(settings, topic, produced, batched=True)
        reported = {tp: consumer.get_watermark_offsets(TopicPartition(*tp), timeout=10, cached=False)[1]
                    for tp in tps}
        print(f"broker-reported ends after batched writes: {reported}")
        expected = {(topic, p): produced.get(p, 0) for p in range(4)}
        assert end_offsets(settings, consumer, tps) == expected

        produce(settings, topic, {1: 3, 3: 5}, batched=False)
        expected[(topic, 1)] += 3
        expected[(topic, 3)] += 5
        assert end_offsets(settings, consumer, tps) == expected
    finally:
        consumer.close()
