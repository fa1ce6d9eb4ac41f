"""Reference data for the synthetic market: one spec per product.

Spots, strike steps and vols are rough late-2026 levels; what matters downstream is that
they are plausible (strike grids on the exchange's step, tick sizes, expiry calendars).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class ProductSpec:
    symbol: str
    spot: float
    strike_step: float
    vol: float  # ATM implied vol, annualised
    rate: float  # continuously compounded risk-free rate
    dividend_yield: float
    tick_size: float
    expiry_weekday: int  # Monday=0
    expiry_utc: dt.time  # settlement time of day in UTC
    weekly: bool  # weekly expiries listed, else monthly only
    skew: float  # IV change per unit of log-moneyness / sqrt(T) (negative: put skew)
    smile: float  # curvature of the smile in the same units

    def __post_init__(self) -> None:
        if self.spot <= 0 or self.strike_step <= 0 or self.tick_size <= 0:
            raise ValueError(f"{self.symbol}: spot, strike step and tick size must be positive")
        if not 0 < self.vol < 5:
            raise ValueError(f"{self.symbol}: vol must be in (0, 5), got {self.vol}")


_NSE = dict(rate=0.065, tick_size=0.05, expiry_utc=dt.time(10, 0))  # 15:30 IST
_BSE = dict(rate=0.065, tick_size=0.05, expiry_utc=dt.time(10, 0))
_US = dict(rate=0.043, tick_size=0.01, expiry_utc=dt.time(21, 0))  # 16:00 New York (EST)

PRODUCTS: dict[str, ProductSpec] = {p.symbol: p for p in [
    ProductSpec("NIFTY", 24_000, 50, 0.13, dividend_yield=0.012, expiry_weekday=3, weekly=True,
                skew=-0.10, smile=0.06, **_NSE),
    ProductSpec("BANKNIFTY", 52_000, 100, 0.16, dividend_yield=0.010, expiry_weekday=3, weekly=False,
                skew=-0.09, smile=0.05, **_NSE),
    ProductSpec("FINNIFTY", 23_500, 50, 0.15, dividend_yield=0.010, expiry_weekday=3, weekly=False,
                skew=-0.09, smile=0.05, **_NSE),
    ProductSpec("SENSEX", 80_000, 100, 0.13, dividend_yield=0.012, expiry_weekday=4, weekly=True,
                skew=-0.10, smile=0.06, **_BSE),
    ProductSpec("AAPL", 230, 2.5, 0.26, dividend_yield=0.005, expiry_weekday=4, weekly=True,
                skew=-0.06, smile=0.04, **_US),
    ProductSpec("TSLA", 340, 5, 0.55, dividend_yield=0.0, expiry_weekday=4, weekly=True,
                skew=-0.03, smile=0.05, **_US),
    ProductSpec("SPY", 590, 1, 0.15, dividend_yield=0.013, expiry_weekday=4, weekly=True,
                skew=-0.12, smile=0.05, **_US),
    ProductSpec("QQQ", 510, 1, 0.19, dividend_yield=0.006, expiry_weekday=4, weekly=True,
                skew=-0.10, smile=0.05, **_US),
]}


def product_spec(symbol: str) -> ProductSpec:
    try:
        return PRODUCTS[symbol]
    except KeyError:
        raise ValueError(f"unknown product {symbol!r}; known: {', '.join(PRODUCTS)}") from None


def listed_expiries(spec: ProductSpec, now: dt.datetime, count: int) -> list[dt.date]:
    """The next `count` expiries after `now`: weeklies on the expiry weekday, or the last
    such weekday of each month for monthly-only products."""
    expiries: list[dt.date] = []
    day = now.date()
    if now.time() >= spec.expiry_utc:
        day += dt.timedelta(days=1)  # today's contract has settled
    while len(expiries) < count:
        if day.weekday() == spec.expiry_weekday and (spec.weekly or _last_weekday_of_month(day)):
            expiries.append(day)
        day += dt.timedelta(days=1)
    return expiries


def _last_weekday_of_month(day: dt.date) -> bool:
    return (day + dt.timedelta(days=7)).month != day.month
