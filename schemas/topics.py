"""The topic registry: every DeltaStream topic with its record schema, key and retention.

Topics are created from this registry (`deltastream.runtime.topics`); a second, isolated
pipeline (e.g. replay) uses the same specs under a name prefix (`topic_specs("replay.")`).
"""
from __future__ import annotations

import dataclasses
import re
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
DELTASTREAM_DLQ = "deltastream.dlq"
DELTASTREAM_LOGS = "deltastream.logs"

_HOUR_MS = 3_600_000
_LEGAL_PREFIX = re.compile(r"^[A-Za-z0-9._-]*$")  # Kafka's topic-name alphabet


@dataclass(frozen=True)
class TopicSpec:
    name: str
    schema: type[Record]
    partitions: int
    key: str  # what the message key holds
    config: dict[str, str] = field(default_factory=dict, hash=False)  # topic-level configs
    description: str = ""


def _retention(hours: int) -> dict[str, str]:
    # The embedded broker keeps topics in memory, so every topic is bounded; history that
    # must last lives in MongoDB.
    return {"cleanup.policy": "delete", "retention.ms": str(hours * _HOUR_MS)}


_SPECS = [
    TopicSpec(MARKET_UNDERLYING, UnderlyingTick, 3, "product", _retention(6),
              "underlying prices from the feed"),
    TopicSpec(MARKET_OPTION_QUOTES, OptionQuote, 6, "symbol", _retention(6),
              "per-option quotes with IV and Greeks"),
    TopicSpec(MARKET_OPTION_CHAINS, OptionChain, 6, "product|expiry", _retention(6),
              "whole-chain snapshots"),
    TopicSpec(MARKET_NEWS, NewsItem, 1, "product (* for market-wide news)", _retention(6),
              "news headlines and notes"),
    TopicSpec(ANALYTICS_UNDERLYING, EnrichedUnderlying, 3, "product", _retention(6),
              "underlying ticks with session context"),
    TopicSpec(ANALYTICS_CHAIN, ChainAnalytics, 3, "product|expiry", _retention(6),
              "PCR, max pain, ATM IV and straddle, OI build-up, skew per chain snapshot"),
    TopicSpec(ANALYTICS_OHLC, OhlcBar, 3, "symbol for option bars, else product", _retention(6),
              "event-time OHLC bars (open updates and final bars share event_id)"),
    TopicSpec(ANALYTICS_VOL_SURFACE, VolSurface, 3, "product", _retention(6),
              "implied volatility surface per product"),
    TopicSpec(DELTASTREAM_DLQ, DlqRecord, 1, "source topic", _retention(24 * 7),
              "messages a service could not process, with the reason"),
    TopicSpec(DELTASTREAM_LOGS, LogRecord, 1, "service", _retention(24),
              "structured logs of every process"),
]
TOPICS: dict[str, TopicSpec] = {spec.name: spec for spec in _SPECS}

# Where each topic's history is kept in MongoDB (docs/storage.md): the sinks write there and
# replay can read it back, so the names live here, once.
MONGO_COLLECTIONS: dict[str, str] = {
    MARKET_UNDERLYING: "underlying_ticks",
    MARKET_OPTION_QUOTES: "option_quotes",
    MARKET_OPTION_CHAINS: "option_chains",
    MARKET_NEWS: "news",
    ANALYTICS_UNDERLYING: "underlying_enriched",
    ANALYTICS_CHAIN: "chain_analytics",
    ANALYTICS_OHLC: "ohlc_bars",
    ANALYTICS_VOL_SURFACE: "vol_surfaces",
    DELTASTREAM_DLQ: "dlq",
    DELTASTREAM_LOGS: "logs",
}


def topic_specs(prefix: str = "") -> list[TopicSpec]:
    """Every registered topic, with `prefix` prepended to its name (e.g. "replay.")."""
    if not _LEGAL_PREFIX.match(prefix):
        raise ValueError(f"topic prefix {prefix!r} may only hold letters, digits, '.', '_', '-'")
    return [dataclasses.replace(spec, name=prefix + spec.name, config=dict(spec.config))
            for spec in TOPICS.values()]
