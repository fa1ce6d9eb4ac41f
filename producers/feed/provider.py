"""What a market-data source hands the feed: one snapshot per step, as numpy frames.

A real source (an exchange adapter, a vendor API) implements `MarketDataProvider` and the
publisher, topics and everything downstream stay as they are.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np


@dataclass
class OptionSide:
    """One side (calls or puts) of a chain, one array element per strike."""

    bid: np.ndarray
    ask: np.ndarray
    last: np.ndarray
    volume: np.ndarray  # cumulative for the trading day
    open_interest: np.ndarray
    iv: np.ndarray  # annualised; NaN where unknown
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray  # per 1 vol point
    theta: np.ndarray  # per calendar day
    rho: np.ndarray  # per 1% rate move


@dataclass
class ChainFrame:
    product: str
    expiry: dt.date
    spot: float
    strikes: np.ndarray
    calls: OptionSide
    puts: OptionSide


@dataclass
class UnderlyingFrame:
    product: str
    price: float
    tick_id: int


@dataclass
class MarketSnapshot:
    timestamp: dt.datetime  # event time (UTC) of every record in the snapshot
    underlyings: list[UnderlyingFrame]
    chains: list[ChainFrame]

    @property
    def quote_count(self) -> int:
        return sum(2 * len(c.strikes) for c in self.chains)


class MarketDataProvider(Protocol):
    """A source of market snapshots; `snapshots()` may block until the next one is due."""

    def snapshots(self) -> Iterator[MarketSnapshot]: ...
