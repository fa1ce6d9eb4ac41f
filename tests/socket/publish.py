"""Publish through the real Redis sink code (`RedisSink.write`) without Kafka: the same Lua script
sets latest:*, INCRs seq, PUBLISHes the envelope and appends it to history:{room}."""
from __future__ import annotations

import datetime as dt
import itertools

import orjson

from deltastream.settings import Settings
from schemas.topics import ANALYTICS_CHAIN, ANALYTICS_UNDERLYING, MARKET_OPTION_CHAINS
from sinks.base import Batch, SinkRecord
from sinks.redis_sink import RedisSink

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.timezone.utc)
EXPIRY = "2026-11-26"
_EVENT_TOPIC = {"underlying_update": ANALYTICS_UNDERLYING, "chain_summary": ANALYTICS_CHAIN,
                "chain_update": MARKET_OPTION_CHAINS}


class SinkPublisher:
    """Envelopes as the sink publishes them; `data` carries `n` (a running number) and any extra
    fields (e.g. `sent` for latency), so tests can tell messages apart."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.sink = RedisSink(settings, group)
        self.sink.start()
        self._offsets = itertools.count()
        self.n = 0

    def record(self, event: str, product: str, expiry: str = EXPIRY, **extra) -> SinkRecord:
        self.n += 1
        when = T0 + dt.timedelta(microseconds=self.n)
        data = {"product": product, "timestamp": when.isoformat(), "n": self.n, **extra}
        if event != "underlying_update":
            data["expiry"] = expiry
        data["event_id"] = f"{product}:{event}:{self.n}"
        topic = _EVENT_TOPIC[event]
        return SinkRecord(topic, f"socket.{topic}", 0, next(self._offsets), product.encode(),
                          orjson.dumps(data), data, {"timestamp": when})

    def write(self, records: list[SinkRecord]) -> None:
        rejected = self.sink.write(Batch(records=records))
        assert not rejected, rejected

    def publish(self, event: str, product: str, expiry: str = EXPIRY, **extra) -> dict:
        record = self.record(event, product, expiry, **extra)
        self.write([record])
        return record.data

    def close(self) -> None:
        self.sink.close()
