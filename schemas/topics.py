"""The topic registry: every DeltaStream topic, its record schema, key and retention."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from schemas.records import (ChainAnalytics, DlqRecord, EnrichedUnderlying, LogRecord, NewsItem,
                             OhlcBar, OptionChain, OptionQuote, Record, UnderlyingTick, VolSurface)

MARKET_UNDERLYING = "market.underlying"
MARKET_OPTION_QUOTES = "market.option_quotes"
MARKET_OPTION_CHAINS = "market.option_chains"
MARKET_NEWS = "market.news"
ANALYTICS_UNDERLYING = "analytics.underlying"
ANALYTICS_CHAIN = "analytics.chain"
ANALYTICS_OHLC = "analytics.ohlc"
ANALYTICS_VOL_SURFACE = "analytics.vol_surface"
DLQ = "deltastream.dlq"
LOGS = "deltastream.logs"

_HOUR_MS = 3_600_000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema: type[Record]
    partitions: int
    key: str  # what the message key is
    description: str
    config: dict[str, str] = field(default_factory=dict)


def _retention(hours: int) -> dict[str, str]:
    # The embedded broker holds topics in memory: bound what it keeps.
    return {"cleanup.policy": "delete", "retention.ms": str(hours * _HOUR_MS)}


TOPICS: dict[str, TopicSpec] = {t.name: t for t in [
    TopicSpec(MARKET_UNDERLYING, UnderlyingTick, 3, "product", "underlying ticks", _retention(6)),
    TopicSpec(MARKET_OPTION_QUOTES, OptionQuote, 6, "symbol", "per-option quotes with Greeks", _retention(6)),
    TopicSpec(MARKET_OPTION_CHAINS, OptionChain, 6, "product|expiry", "whole-chain snapshots", _retention(6)),
    TopicSpec(MARKET_NEWS, NewsItem, 1, "product or _", "news and notes", _retention(24 * 7)),
    TopicSpec(ANALYTICS_UNDERLYING, EnrichedUnderlying, 3, "product", "ticks with session context", _retention(6)),
    TopicSpec(ANALYTICS_CHAIN, ChainAnalytics, 3, "product|expiry", "PCR, max pain, ATM IV, skew", _retention(6)),
    TopicSpec(ANALYTICS_OHLC, OhlcBar, 3, "product-or-symbol|interval", "event-time OHLC bars", _retention(6)),
    TopicSpec(ANALYTICS_VOL_SURFACE, VolSurface, 3, "product", "implied vol surface", _retention(6)),
    TopicSpec(DLQ, DlqRecord, 1, "source topic", "records that could not be processed", _retention(24 * 7)),
    TopicSpec(LOGS, LogRecord, 1, "service", "structured logs of every process", _retention(24)),
]}


def topic_specs(prefix: str = "") -> list[TopicSpec]:
    """The registry with `prefix` prepended to each name (e.g. "replay.")."""
    return [dataclasses.replace(t, name=prefix + t.name) for t in TOPICS.values()]
