"""The synthetic market: deterministic, on the exchange's grid, plausible smiles and interest."""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
import pytest

from producers.feed.products import PRODUCTS, ProductSpec, listed_expiries, product_spec
from producers.feed.synthetic import SyntheticMarket, SyntheticProvider
from quant import black_scholes_price

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.timezone.utc)  # a Monday morning


def snapshots(seed: int | None, n: int, interval: float = 1.0, **kw):
    market = SyntheticMarket(list(PRODUCTS.values()), seed=seed, **kw)
    provider = SyntheticProvider(market, interval, start=T0, realtime=False)
    it = provider.snapshots()
    return [next(it) for _ in range(n)]


def as_tuple(snap):
    return [(u.product, u.price) for u in snap.underlyings] + [
        (c.product, c.expiry, c.spot, c.strikes.tolist(), c.calls.bid.tolist(), c.puts.open_interest.tolist(),
         c.calls.volume.tolist()) for c in snap.chains]


def test_same_seed_same_market_different_seed_differs():
    a, b, c = snapshots(7, 5), snapshots(7, 5), snapshots(8, 5)
    assert [as_tuple(s) for s in a] == [as_tuple(s) for s in b]
    assert [as_tuple(s) for s in a] != [as_tuple(s) for s in c]


def test_strikes_on_the_product_step_centred_on_spot():
    snap = snapshots(1, 3, strikes_per_side=10)[-1]
    for chain in snap.chains:
        spec = product_spec(chain.product)
        assert chain.strikes.size == 21
        assert np.allclose(np.mod(chain.strikes / spec.strike_step, 1.0), 0.0)
        assert np.all(np.diff(chain.strikes) > 0)
        atm = chain.strikes[np.argmin(np.abs(chain.strikes - chain.spot))]
        assert atm == chain.strikes[10]


def test_expiries_fall_on_the_exchange_weekday():
    for spec in PRODUCTS.values():
        expiries = listed_expiries(spec, T0, 4)
        assert len(expiries) == 4 and expiries == sorted(expiries)
        assert all(e.weekday() == spec.expiry_weekday for e in expiries)
        if not spec.weekly:  # monthly: the last such weekday of its month
            assert all((e + dt.timedelta(days=7)).month != e.month for e in expiries)


def test_quotes_are_priced_by_black_scholes_with_a_put_skew():
    snap = snapshots(3, 2)[-1]
    for chain in snap.chains:
        spec = product_spec(chain.product)
        c, p = chain.calls, chain.puts
        assert np.all(c.bid <= c.last) and np.all(c.last <= c.ask) and np.all(c.bid < c.ask)
        assert np.all(p.bid <= p.last) and np.all(p.last <= p.ask)
        assert np.all((c.delta > 0) & (c.delta < 1)) and np.all((p.delta < 0) & (p.delta > -1))
        assert np.all(c.gamma > 0) and np.all(c.vega > 0)
        # the put wing (low strikes) trades above the ATM vol
        assert c.iv[0] > c.iv[10]
        # mids match BSM at the quoted IV (within the spread's rounding)
        expiry_at = dt.datetime.combine(chain.expiry, spec.expiry_utc, tzinfo=dt.timezone.utc)
        t = (expiry_at - snap.timestamp).total_seconds() / (365 * 86400)
        model = black_scholes_price(np.ones(chain.strikes.size, bool), chain.spot, chain.strikes, t,
                                    spec.rate, c.iv, spec.dividend_yield)
        assert np.all(np.abs(model - (c.bid + c.ask) / 2) <= (c.ask - c.bid) / 2 + 2 * spec.tick_size)


def test_volume_accumulates_within_the_day_and_oi_moves_gradually():
    snaps = snapshots(5, 60, interval=60.0)  # one hour
    first, last = snaps[0].chains[0], snaps[-1].chains[0]
    assert np.all(last.calls.volume >= first.calls.volume)
    assert last.calls.volume.sum() > first.calls.volume.sum()
    oi_change = np.abs(last.calls.open_interest - first.calls.open_interest).sum()
    assert 0 < oi_change < 0.5 * first.calls.open_interest.sum()
    assert np.all(last.calls.open_interest >= 0)


def test_volume_resets_on_a_new_trading_day():
    market = SyntheticMarket([product_spec("NIFTY")], seed=1)
    market.step(T0)
    day1 = market.step(T0 + dt.timedelta(hours=3)).chains[0].calls.volume.sum()
    day2 = market.step(T0 + dt.timedelta(days=1)).chains[0].calls.volume.sum()
    assert day1 > 0 and day2 < day1


@pytest.mark.parametrize("bad", [dict(spot=-1.0), dict(strike_step=0.0), dict(vol=-0.2)])
def test_invalid_market_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        dataclasses.replace(product_spec("NIFTY"), **bad)


def test_unknown_product_is_refused_with_the_known_list():
    with pytest.raises(ValueError, match="unknown product 'DOGE'.*NIFTY"):
        product_spec("DOGE")
