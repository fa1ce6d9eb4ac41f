"""The synthetic market: GBM underlyings and Black-Scholes-Merton option chains.

Everything is vectorised across all chains of a step: one pricing call prices every
option of every product, so the feed's cost is a few numpy calls per snapshot.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence

import numpy as np

from producers.feed.products import ProductSpec, listed_expiries
from producers.feed.provider import ChainFrame, MarketSnapshot, OptionSide, UnderlyingFrame
from quant import gbm_step, greeks, to_trader_units

SECONDS_PER_YEAR = 365.0 * 86_400.0
GRID_WIDTH = 4  # the OI/volume state covers this many times the published strike window


@dataclass
class _ChainState:
    """OI and cumulative volume per strike on a fixed grid around the listing spot."""

    expiry: dt.date
    grid: np.ndarray  # strikes
    call_oi: np.ndarray
    put_oi: np.ndarray
    call_volume: np.ndarray = field(init=False)
    put_volume: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self.call_volume = np.zeros_like(self.call_oi)
        self.put_volume = np.zeros_like(self.put_oi)


@dataclass
class _ProductState:
    spec: ProductSpec
    spot: float
    atm_vol: float
    chains: dict[dt.date, _ChainState] = field(default_factory=dict)


class SyntheticMarket:
    """Deterministic for a given seed and clock: same seed, same start → same market."""

    def __init__(self, specs: Sequence[ProductSpec], *, strikes_per_side: int = 10, expiries: int = 3,
                 seed: int | None = None, time_scale: float = 1.0) -> None:
        if strikes_per_side < 1 or expiries < 1 or time_scale <= 0:
            raise ValueError("strikes_per_side and expiries must be >= 1 and time_scale > 0")
        self.rng = np.random.default_rng(seed)
        self.strikes_per_side = strikes_per_side
        self.n_expiries = expiries
        self.time_scale = time_scale
        self.states = {s.symbol: _ProductState(s, s.spot, s.vol) for s in specs}
        self._last_time: dt.datetime | None = None
        self._session: dt.date | None = None

    # -- evolution ------------------------------------------------------------------
    def step(self, now: dt.datetime) -> MarketSnapshot:
        """Advance the market to `now` and return its snapshot at that instant."""
        elapsed = 0.0 if self._last_time is None else (now - self._last_time).total_seconds()
        dt_years = max(elapsed, 0.0) * self.time_scale / SECONDS_PER_YEAR
        self._last_time = now
        new_session = self._session != now.date()
        self._session = now.date()

        states = list(self.states.values())
        spots = np.array([s.spot for s in states])
        vols = np.array([s.atm_vol for s in states])
        if dt_years > 0:
            spots = gbm_step(spots, 0.0, vols, dt_years, self.rng.standard_normal(len(states)))
            # ATM vol wanders, mean-reverting to the product's level (vol of vol ~ 60%).
            base = np.array([s.spec.vol for s in states])
            vols = vols + 2.0 * (base - vols) * dt_years + 0.6 * vols * np.sqrt(dt_years) * \
                self.rng.standard_normal(len(states))
            vols = np.clip(vols, 0.3 * base, 3.0 * base)
        for state, spot, vol in zip(states, spots, vols):
            state.spot, state.atm_vol = float(spot), float(vol)
            self._roll_expiries(state, now)

        tick_id = int(now.timestamp() * 1000)  # unique per product across restarts
        underlyings = [UnderlyingFrame(s.spec.symbol, _round_to(s.spot, s.spec.tick_size), tick_id)
                       for s in states]
        chains = self._price_chains(states, now, dt_years, new_session)
        return MarketSnapshot(now, underlyings, chains)

    def _roll_expiries(self, state: _ProductState, now: dt.datetime) -> None:
        wanted = listed_expiries(state.spec, now, self.n_expiries)
        for expiry in list(state.chains):
            if expiry not in wanted:
                del state.chains[expiry]  # settled
        for expiry in wanted:
            if expiry not in state.chains:
                state.chains[expiry] = self._list_chain(state, expiry, now)

    def _list_chain(self, state: _ProductState, expiry: dt.date, now: dt.datetime) -> _ChainState:
        spec, n = state.spec, self.strikes_per_side * GRID_WIDTH
        atm = round(state.spot / spec.strike_step) * spec.strike_step
        grid = atm + spec.strike_step * np.arange(-n, n + 1)
        grid = grid[grid > 0]
        x = (grid - state.spot) / (spec.strike_step * self.strikes_per_side)
        days = max((_expiry_datetime(spec, expiry) - now).total_seconds() / 86_400, 0.5)
        scale = 2_000_000 / (spec.strike_step * np.sqrt(days))  # near expiries hold more OI
        round_bonus = 1.0 + 0.6 * (np.mod(grid, spec.strike_step * 10) == 0)
        noise = lambda: self.rng.lognormal(0.0, 0.35, grid.size)  # noqa: E731
        # Calls are written above spot, puts below: OI peaks on the OTM side of each.
        call_oi = scale * np.exp(-0.5 * (x - 0.4) ** 2) * round_bonus * noise()
        put_oi = scale * np.exp(-0.5 * (x + 0.4) ** 2) * round_bonus * noise()
        return _ChainState(expiry, grid, np.rint(call_oi), np.rint(put_oi))

    # -- pricing --------------------------------------------------------------------
    def _price_chains(self, states: list[_ProductState], now: dt.datetime, dt_years: float,
                      new_session: bool) -> list[ChainFrame]:
        windows, spot_l, strike_l, t_l, r_l, q_l, iv_l = [], [], [], [], [], [], []
        for state in states:
            spec = state.spec
            for chain in state.chains.values():
                self._evolve_interest(chain, state, dt_years, new_session)
                lo, hi = self._window(chain, state)
                strikes = chain.grid[lo:hi]
                t = max((_expiry_datetime(spec, chain.expiry) - now).total_seconds(), 60.0) / SECONDS_PER_YEAR
                windows.append((state, chain, lo, hi))
                spot_l.append(np.full(strikes.size, state.spot))
                strike_l.append(strikes)
                t_l.append(np.full(strikes.size, t))
                r_l.append(np.full(strikes.size, spec.rate))
                q_l.append(np.full(strikes.size, spec.dividend_yield))
                iv_l.append(self._smile(state, strikes, t))
        if not windows:
            return []
        S, K, T, R, Q, IV = (np.concatenate(a) for a in (spot_l, strike_l, t_l, r_l, q_l, iv_l))
        calls = to_trader_units(greeks(np.ones(K.size, bool), S, K, T, R, IV, Q))
        puts = to_trader_units(greeks(np.zeros(K.size, bool), S, K, T, R, IV, Q))

        frames, start = [], 0
        for state, chain, lo, hi in windows:
            end = start + (hi - lo)
            sl = slice(start, end)
            tick = state.spec.tick_size
            frames.append(ChainFrame(
                product=state.spec.symbol, expiry=chain.expiry, spot=_round_to(state.spot, tick),
                strikes=K[sl],
                calls=self._side(calls, sl, IV[sl], chain.call_volume[lo:hi], chain.call_oi[lo:hi], tick),
                puts=self._side(puts, sl, IV[sl], chain.put_volume[lo:hi], chain.put_oi[lo:hi], tick),
            ))
            start = end
        return frames

    def _smile(self, state: _ProductState, strikes: np.ndarray, t: float) -> np.ndarray:
        spec = state.spec
        forward = state.spot * np.exp((spec.rate - spec.dividend_yield) * t)
        m = np.log(strikes / forward) / np.sqrt(t)
        # Short expiries trade a little richer at the money (term structure).
        atm = state.atm_vol * (1.0 + 0.08 * np.exp(-t * 52))
        return np.clip(atm + spec.skew * m * atm + spec.smile * m * m * atm, 0.05, 2.0)

    def _window(self, chain: _ChainState, state: _ProductState) -> tuple[int, int]:
        """The published strikes: `strikes_per_side` either side of the ATM strike."""
        centre = int(np.argmin(np.abs(chain.grid - state.spot)))
        n = self.strikes_per_side
        lo = min(max(centre - n, 0), max(chain.grid.size - (2 * n + 1), 0))
        return lo, min(lo + 2 * n + 1, chain.grid.size)

    def _evolve_interest(self, chain: _ChainState, state: _ProductState, dt_years: float,
                         new_session: bool) -> None:
        if new_session:
            # A new trading day: volume starts from zero (what happened overnight is not traded).
            chain.call_volume[:] = 0
            chain.put_volume[:] = 0
            return
        if dt_years <= 0:
            return
        seconds = dt_years * SECONDS_PER_YEAR
        # Volume: Poisson arrivals, busier near the money; ~10% of OI trades per day.
        near = np.exp(-0.5 * ((chain.grid - state.spot) / (state.spec.strike_step * 6)) ** 2)
        for oi, vol in ((chain.call_oi, chain.call_volume), (chain.put_oi, chain.put_volume)):
            rate = (0.1 / 23_400) * seconds * (oi + 500) * (0.3 + near)
            traded = self.rng.poisson(rate)
            vol += traded
            # OI moves by a fraction of what traded (openings minus closings), never below 0.
            change = np.rint(traded * self.rng.uniform(-0.45, 0.55, oi.size))
            np.maximum(oi + change, 0, out=oi)

    @staticmethod
    def _side(g, sl: slice, iv: np.ndarray, volume: np.ndarray, oi: np.ndarray, tick: float) -> OptionSide:
        mid = np.maximum(g.price[sl], 0.0)
        half_spread = np.maximum(tick, 0.004 * mid + tick)
        bid = np.maximum(np.floor((mid - half_spread) / tick) * tick, 0.0)
        ask = np.maximum(np.ceil((mid + half_spread) / tick) * tick, bid + tick)
        last = np.clip(np.round(mid / tick) * tick, bid, ask)
        return OptionSide(bid=np.round(bid, 6), ask=np.round(ask, 6), last=np.round(last, 6),
                          volume=volume.copy(), open_interest=oi.copy(), iv=iv,
                          delta=g.delta[sl], gamma=g.gamma[sl], vega=g.vega[sl],
                          theta=g.theta[sl], rho=g.rho[sl])


class SyntheticProvider:
    """`MarketDataProvider` over `SyntheticMarket`, on the wall clock or a simulated one."""

    def __init__(self, market: SyntheticMarket, interval: float, *, start: dt.datetime | None = None,
                 realtime: bool = True, sleep: Callable[[float], None] = time.sleep) -> None:
        self.market, self.interval, self.realtime, self._sleep = market, interval, realtime, sleep
        self.start = start

    def snapshots(self) -> Iterator[MarketSnapshot]:
        if self.realtime:
            next_due = time.monotonic()
            while True:
                delay = next_due - time.monotonic()
                if delay > 0:
                    self._sleep(delay)
                # Event time is the wall clock; steps that fell behind are not replayed.
                yield self.market.step(dt.datetime.now(dt.timezone.utc))
                next_due = max(next_due + self.interval, time.monotonic() - self.interval)
        else:
            now = self.start or dt.datetime.now(dt.timezone.utc)
            while True:
                yield self.market.step(now)
                now += dt.timedelta(seconds=self.interval)


def _expiry_datetime(spec: ProductSpec, expiry: dt.date) -> dt.datetime:
    return dt.datetime.combine(expiry, spec.expiry_utc, tzinfo=dt.timezone.utc)


def _round_to(x: float, tick: float) -> float:
    return round(round(x / tick) * tick, 6)
