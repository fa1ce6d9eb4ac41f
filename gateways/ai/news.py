"""`POST /ai/news` publishes to `market.news` (the MongoDB sink stores it in `news`)."""
from __future__ import annotations

import threading

from deltastream.settings import Settings
from schemas.codec import encode, headers
from schemas.records import NewsItem
from schemas.topics import MARKET_NEWS

DELIVERY_TIMEOUT = 10.0


class NewsUnavailable(RuntimeError):
    """Kafka did not acknowledge the news item."""


class NewsPublisher:
    """One confluent-kafka producer per app, created on first use; delivery is awaited, so a
    201 means the broker has the record."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = settings.topic(MARKET_NEWS)
        self._producer = None
        self._lock = threading.Lock()

    def _get(self):
        with self._lock:
            if self._producer is None:
                from confluent_kafka import Producer

                from deltastream.clients import producer_config
                from deltastream.runtime.topics import ensure_topics

                ensure_topics(self.settings, timeout=DELIVERY_TIMEOUT)
                self._producer = Producer(producer_config(
                    self.settings, **{"client.id": "deltastream-ai", "message.timeout.ms": int(DELIVERY_TIMEOUT * 1000)}))
            return self._producer

    def publish(self, item: NewsItem) -> None:
        from confluent_kafka import KafkaException

        outcome: list[object] = []
        try:
            producer = self._get()
            producer.produce(self.topic, encode(item), item.key(), headers=headers(item.SCHEMA),
                             on_delivery=lambda err, _msg: outcome.append(err))
            producer.flush(DELIVERY_TIMEOUT)
        except (KafkaException, BufferError) as exc:
            raise NewsUnavailable(f"Kafka unavailable: {exc}") from exc
        if not outcome:
            raise NewsUnavailable(f"Kafka did not acknowledge within {DELIVERY_TIMEOUT:g} s")
        if outcome[0] is not None:
            raise NewsUnavailable(f"Kafka refused the record: {outcome[0]}")

    def close(self) -> None:
        with self._lock:
            if self._producer is not None:
                self._producer.flush(2)
                self._producer = None  # librdkafka's threads stop when the producer is collected
