"""The embedded broker can show a tail reader offset n+1 before n when two connections write
one partition (`deltastream.clients.TailGaps`); a reader with the guard still gets every
record exactly once, in offset order."""
from __future__ import annotations

import threading
import time

import pytest

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from deltastream.clients import TailGaps, admin_config, consumer_config, producer_config

WRITERS, PER_WRITER = 2, 3000


def write(settings, topic: str, writer: int, failed: list, batched: bool) -> None:
    producer = Producer(producer_config(settings, batched=batched, **{"client.id": f"writer-{writer}"}))
    for i in range(PER_WRITER):
        while True:
            try:
                producer.produce(topic, f"{writer}-{i}".encode(), partition=0,
                                 on_delivery=lambda err, _m: err and failed.append(err))
                break
            except BufferError:
                producer.poll(0.01)
        producer.poll(0)
    producer.flush(60)


def read_while_written(settings, topic: str, batched: bool) -> tuple[list[int], list[bytes], int]:
    consumer = Consumer(consumer_config(settings, f"{topic}-reader"))
    consumer.assign([TopicPartition(topic, 0, 0)])
    gaps = TailGaps(consumer, settings)
    failed: list = []
    writers = [threading.Thread(target=write, args=(settings, topic, w, failed, batched)) for w in range(WRITERS)]
    offsets, values = [], []
    try:
        for t in writers:
            t.start()
        quiet_since = None
        while any(t.is_alive() for t in writers) or quiet_since is None or time.monotonic() - quiet_since < 2:
            batch = [m for m in gaps.filter(consumer.consume(1000, 0.05)) if m.error() is None]
            offsets += [m.offset() for m in batch]
            values += [m.value() for m in batch]
            if batch or any(t.is_alive() for t in writers):
                quiet_since = time.monotonic()
    finally:
        for t in writers:
            t.join()
        consumer.close()
    assert not failed, failed[:3]
    return offsets, values, gaps.refetched


@pytest.mark.parametrize("batched", [False, True], ids=["one-record-batches", "batched"])
def test_guarded_tail_reader_gets_every_record_of_two_writers(stack, unique, batched):
    settings = stack.settings
    topic = f"gaps-{unique}"
    admin = AdminClient(admin_config(settings))  # kept alive until the topic exists
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    time.sleep(0.5)  # metadata

    offsets, values, refetched = read_while_written(settings, topic, batched)

    total = WRITERS * PER_WRITER
    assert offsets == list(range(total)), f"first missing offset: {sorted(set(range(total)) - set(offsets))[:5]}"
    assert len(set(values)) == total
    print(f"re-reads after a jump: {refetched}")
