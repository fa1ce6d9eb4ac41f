"""The replay API: a time range of DeltaStream topics, in event-time order, paced or flat out.

    from producers.replay.api import replay
    for rec in replay(settings, ["market.option_chains"], start, end, speed=10):
        chain = rec.as_record()          # typed OptionChain

Sources: Kafka (default), an exported Parquet/JSONL file, or the MongoDB history. With
`end=None` a Kafka replay continues into live data after a `ReplayCompleted` marker.
"""
from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path
from typing import AsyncIterator, Callable, Iterator, Literal

from confluent_kafka import Producer

from deltastream.clients import producer_config
from deltastream.settings import Settings
from producers.replay.files import read_records
from producers.replay.kafka_source import KafkaSource
from producers.replay.mongo_source import mongo_records
from producers.replay.pacing import paced
from producers.replay.record import ReplayCompleted, ReplayRecord

Item = ReplayRecord | ReplayCompleted
Source = Literal["kafka", "mongo"] | Path


def _ms(t: dt.datetime) -> int:
    return int(t.timestamp() * 1000)


def replay(settings: Settings, topics: list[str], start: dt.datetime, end: dt.datetime | None,
           speed: float | None = None, source: Source = "kafka", group: str | None = None) -> Iterator[Item]:
    if not topics:
        raise ValueError("name at least one topic")
    if end is not None and end < start:
        raise ValueError(f"end {end.isoformat()} is before start {start.isoformat()}")
    if end is None and source != "kafka":
        raise ValueError("only a Kafka replay can continue into live data (end=None)")
    if source == "kafka":
        items: Iterator[Item] = iter(KafkaSource(settings, topics, _ms(start), None if end is None else _ms(end),
                                                 group=group))
    elif source == "mongo":
        items = mongo_records(settings, topics, start, end)
    else:
        items = read_records(Path(source), topics, _ms(start), _ms(end))
    return paced(items, speed, lambda item: item.timestamp_ms)


def replay_to_callback(settings: Settings, callback: Callable[[Item], None], topics: list[str],
                       start: dt.datetime, end: dt.datetime | None, **kwargs) -> int:
    """Push-style replay: calls `callback` for every item; returns how many records it saw."""
    count = 0
    for item in replay(settings, topics, start, end, **kwargs):
        callback(item)
        count += isinstance(item, ReplayRecord)
    return count


async def areplay(settings: Settings, topics: list[str], start: dt.datetime, end: dt.datetime | None,
                  **kwargs) -> AsyncIterator[Item]:
    """Async iterator form; the blocking Kafka reads run in a worker thread."""
    iterator = replay(settings, topics, start, end, **kwargs)
    sentinel = object()
    while True:
        item = await asyncio.to_thread(next, iterator, sentinel)
        if item is sentinel:
            return
        yield item  # type: ignore[misc]


class TopicRepublisher:
    """Re-publish replayed records into `prefix + topic` with their original key, headers and
    event time, so the unchanged processors compute the replayed window's analytics."""

    def __init__(self, settings: Settings, prefix: str) -> None:
        if not prefix:
            raise ValueError("republishing needs a topic prefix (e.g. 'replay.'), never the live topics")
        from deltastream.runtime.topics import ensure_topics

        # Same partitions and retention as the live topics; replayed names are the prefix
        # plus the recorded names, which carry the settings' own prefix.
        ensure_topics(settings, prefix + settings.topic_prefix)
        self.prefix = prefix
        self.producer = Producer(producer_config(settings, batched=True, **{"client.id": "deltastream-replay"}))
        self.failed = 0

    def _on_delivery(self, err, _msg) -> None:
        if err is not None:
            self.failed += 1

    def __call__(self, item: Item) -> None:
        if isinstance(item, ReplayCompleted):
            return
        while True:
            try:
                self.producer.produce(self.prefix + item.topic, item.value, item.key, headers=list(item.headers),
                                      timestamp=item.timestamp_ms, on_delivery=self._on_delivery)
                break
            except BufferError:
                self.producer.poll(0.1)
        self.producer.poll(0)

    def flush(self, timeout: float = 60.0) -> int:
        return self.producer.flush(timeout)
