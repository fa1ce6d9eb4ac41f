"""Publish market snapshots to Kafka with confluent-kafka.

The producer is idempotent with acks=all and never gives up on a record it accepted
(`message.timeout.ms=0`: librdkafka retries through a broker outage); its queue is bounded,
so during an outage `produce` pushes back and the feed waits instead of dropping data.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import KafkaError, Producer

from deltastream.clients import producer_config
from deltastream.settings import Settings
from producers.feed.provider import MarketSnapshot
from producers.feed.records import chain_records, iso_utc, underlying_record
from schemas.codec import encode_dict, headers
from schemas.records import OptionChain, OptionQuote, UnderlyingTick
from schemas.topics import MARKET_OPTION_CHAINS, MARKET_OPTION_QUOTES, MARKET_UNDERLYING

log = logging.getLogger(__name__)


@dataclass
class PublishStats:
    produced: int = 0  # records handed to the producer
    delivered: int = 0  # acknowledged by the broker
    failed: int = 0  # reported failed by librdkafka (fatal errors only, see module doc)
    quotes: int = 0  # option quotes produced, standalone or inside chain snapshots
    last_error: str | None = None
    started: float = field(default_factory=time.monotonic)


class FeedPublisher:
    def __init__(self, settings: Settings, publish_quotes: bool = True, **producer_overrides) -> None:
        conf = producer_config(settings, batched=True, **{"message.timeout.ms": 0, "client.id": "deltastream-feed",
                                            "error_cb": self._on_error, **producer_overrides})
        self.producer = Producer(conf)
        self.publish_quotes = publish_quotes
        self.topics = {name: settings.topic(name)
                       for name in (MARKET_UNDERLYING, MARKET_OPTION_QUOTES, MARKET_OPTION_CHAINS)}
        self._headers = {UnderlyingTick: headers(UnderlyingTick.SCHEMA),
                         OptionQuote: headers(OptionQuote.SCHEMA),
                         OptionChain: headers(OptionChain.SCHEMA)}
        self.stats = PublishStats()

    # -- callbacks (run inside poll/flush) -------------------------------------------
    def _on_delivery(self, err: KafkaError | None, _msg) -> None:
        if err is None:
            self.stats.delivered += 1
        else:
            self.stats.failed += 1
            self.stats.last_error = str(err)
            log.error("delivery failed: %s", err)

    def _on_error(self, err: KafkaError) -> None:
        # Connection trouble is retried by librdkafka; say so once per kind, loudly if fatal.
        self.stats.last_error = str(err)
        if err.fatal():
            log.critical("fatal producer error: %s", err)
        else:
            log.warning("broker problem (retrying): %s", err)

    # -- publishing ---------------------------------------------------------------------
    def _produce(self, topic: str, key: str, value: bytes, hdrs, timestamp_ms: int) -> None:
        while True:
            try:
                # The message timestamp is the record's event time, so offsets_for_times
                # (replay) finds records by when they happened, not when they were sent.
                self.producer.produce(topic, value, key, headers=hdrs, timestamp=timestamp_ms,
                                      on_delivery=self._on_delivery)
                self.stats.produced += 1
                return
            except BufferError:
                # Queue full (broker slow or down): serve callbacks and wait; drop nothing.
                self.producer.poll(0.1)

    def publish(self, snapshot: MarketSnapshot) -> int:
        """Produce every record of the snapshot; returns how many records were produced."""
        ts_iso = iso_utc(snapshot.timestamp)
        ts_ms = int(snapshot.timestamp.timestamp() * 1000)
        before = self.stats.produced
        hdr_u, hdr_q, hdr_c = (self._headers[m] for m in (UnderlyingTick, OptionQuote, OptionChain))
        for frame in snapshot.underlyings:
            record = underlying_record(frame, ts_iso)
            self._produce(self.topics[MARKET_UNDERLYING], frame.product, encode_dict(record), hdr_u, ts_ms)
        tick_ids = {u.product: u.tick_id for u in snapshot.underlyings}
        for frame in snapshot.chains:
            calls, puts, chain = chain_records(frame, ts_iso, tick_ids[frame.product])
            if self.publish_quotes:
                topic = self.topics[MARKET_OPTION_QUOTES]
                for quote in calls + puts:
                    self._produce(topic, quote["symbol"], encode_dict(quote), hdr_q, ts_ms)
                self.stats.quotes += len(calls) + len(puts)
            self._produce(self.topics[MARKET_OPTION_CHAINS], f"{frame.product}|{chain['expiry']}",
                          encode_dict(chain), hdr_c, ts_ms)
            self.stats.quotes += len(calls) + len(puts)
        self.producer.poll(0)
        return self.stats.produced - before

    def flush(self, timeout: float = 30.0) -> int:
        """Wait for outstanding deliveries; returns how many are still not acknowledged."""
        return self.producer.flush(timeout)
