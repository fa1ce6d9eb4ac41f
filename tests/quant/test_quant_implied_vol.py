"""Implied volatility: round trips to 1e-10 where recoverable, NaN where not, and the two
pitfalls of the naive approach (a plain Newton from sigma = 0.5; wrong numbers for prices
that carry no information about sigma)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import newton

from quant import black_scholes_price, implied_volatility, iv_recoverable, vega

EPS = np.finfo(float).eps
TOL = 1e-10


def _check(price, is_call, S, K, t, r, sigma, q):
    """The contract, with a x2 band around the recoverability threshold (the solver checks
    it at its own answer, the test at the true sigma)."""
    iv = implied_volatility(price, is_call, S, K, t, r, q)
    clearly_ok = iv_recoverable(is_call, S, K, t, r, sigma, q, vol_resolution=TOL / 2)
    maybe_ok = iv_recoverable(is_call, S, K, t, r, sigma, q, vol_resolution=TOL * 2)
    got = ~np.isnan(iv)
    assert np.all(got[clearly_ok]), "recoverable vol returned as NaN"
    assert not np.any(got[~maybe_ok]), "unrecoverable vol returned as a number"
    err = np.abs(iv - sigma)[got]
    assert np.all(err <= TOL), f"max error {err.max()}"
    # and every number returned reprices to the input (to a few ulps of the price terms)
    repriced = black_scholes_price(is_call, S, K, t, r, iv, q)
    scale = S * np.exp(-q * t) + K * np.exp(-r * t)
    assert np.all((np.abs(repriced - price) <= 32 * EPS * scale)[got])
    return iv, clearly_ok


@settings(max_examples=400, deadline=None)
@given(S=st.floats(1.0, 50_000.0), m=st.floats(0.5, 2.0), t=st.floats(1 / 365, 2.0),
       sigma=st.floats(0.05, 2.0), r=st.floats(-0.02, 0.10), q=st.floats(0.0, 0.06),
       is_call=st.booleans())
def test_round_trip_price_iv_price(S, m, t, sigma, r, q, is_call):
    K = S * m
    price = black_scholes_price(is_call, S, K, t, r, sigma, q)
    _check(price, is_call, S, K, t, r, sigma, q)


def test_round_trip_on_a_dense_random_grid():
    """200k options over the whole target domain, both flags: the vectorised path."""
    rng = np.random.default_rng(2024)
    n = 200_000
    S = 100.0
    K = S * np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    t = np.exp(rng.uniform(np.log(1 / 365), np.log(2.0), n))
    sigma = np.exp(rng.uniform(np.log(0.05), np.log(2.0), n))
    is_call = rng.random(n) < 0.5
    r, q = rng.uniform(0.0, 0.1, n), rng.uniform(0.0, 0.05, n)
    price = black_scholes_price(is_call, S, K, t, r, sigma, q)
    iv, ok = _check(price, is_call, S, K, t, r, sigma, q)
    assert ok.mean() > 0.6  # most of the grid is recoverable; the rest is deep ITM / no time value


def test_far_outside_the_target_domain_it_still_never_returns_a_wrong_number():
    rng = np.random.default_rng(99)
    n = 100_000
    S = np.exp(rng.uniform(-3, 8, n))
    K = S * np.exp(rng.uniform(np.log(0.01), np.log(100), n))
    t = np.exp(rng.uniform(np.log(1e-5), np.log(50), n))
    sigma = np.exp(rng.uniform(np.log(1e-4), np.log(10), n))
    is_call = rng.random(n) < 0.5
    r, q = rng.uniform(-0.5, 0.5, n), rng.uniform(-0.5, 0.5, n)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and no numpy warnings on the way
        price = black_scholes_price(is_call, S, K, t, r, sigma, q)
        _check(price, is_call, S, K, t, r, sigma, q)


def _hard_grid():
    m = np.geomspace(0.5, 2.0, 25)
    t = np.geomspace(1 / 365, 2.0, 20)
    v = np.geomspace(0.05, 2.0, 20)
    M, T, V = (a.ravel() for a in np.meshgrid(m, t, v, indexing="ij"))
    return 100.0, 100.0 * M, T, 0.03, V, 0.01


@pytest.mark.parametrize("is_call", [True, False])
def test_pitfall_plain_newton_from_half_fails_where_ours_does_not(is_call, record_property):
    """scipy.optimize.newton from sigma = 0.5 (vectorised) diverges or stalls on about a
    quarter of the recoverable grid (flat vega far from the money sends it to sigma < 0 or
    to huge sigma); ours recovers every recoverable point to 1e-10."""
    S, K, t, r, sigma, q = _hard_grid()
    price = black_scholes_price(is_call, S, K, t, r, sigma, q)
    recoverable = iv_recoverable(is_call, S, K, t, r, sigma, q)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        root, converged, _ = newton(
            lambda s: black_scholes_price(is_call, S, K, t, r, s, q) - price, np.full(price.shape, 0.5),
            fprime=lambda s: vega(is_call, S, K, t, r, s, q), tol=1e-12, maxiter=50, full_output=True)
    newton_fails = (~converged | ~(np.abs(root - sigma) <= 1e-6))[recoverable]
    fraction = float(newton_fails.mean())
    record_property("newton_failure_fraction", fraction)
    print(f"plain newton (x0=0.5) fails on {fraction:.1%} of {recoverable.sum()} recoverable points")
    assert fraction > 0.1, "the grid is meant to be hard for a plain Newton"

    ours = implied_volatility(price, is_call, S, K, t, r, q)
    ours_fail = np.isnan(ours) | (np.abs(ours - sigma) > TOL)
    assert not np.any(ours_fail[recoverable])
    assert np.all(np.isnan(ours[~iv_recoverable(is_call, S, K, t, r, sigma, q, vol_resolution=2 * TOL)]))


def test_pitfall_unrecoverable_prices_give_nan_not_a_number():
    S, t, r, q = 100.0, 0.5, 0.03, 0.01
    call_intrinsic = S * np.exp(-q * t) - 80.0 * np.exp(-r * t)
    cases = {
        "below intrinsic": (call_intrinsic - 0.01, True, 80.0, t),
        "exactly intrinsic": (call_intrinsic, True, 80.0, t),
        "negative": (-1.0, False, 100.0, t),
        "zero OTM price": (0.0, True, 120.0, t),
        "call at its upper bound S e^-qt": (S * np.exp(-q * t), True, 100.0, t),
        "put above its upper bound K e^-rt": (100.0, False, 100.0, t),
        "not a number": (np.nan, True, 100.0, t),
        "expired": (1.0, True, 100.0, 0.0),
    }
    for name, (price, is_call, K, tt) in cases.items():
        assert np.isnan(implied_volatility(price, is_call, S, K, tt, r, q)), name

    # Deep OTM, 1 day, low vol: the price underflows to 0.0 - nothing to invert.
    p = black_scholes_price(True, S, 200.0, 1 / 365, r, 0.05, q)
    assert p == 0.0 and np.isnan(implied_volatility(p, True, S, 200.0, 1 / 365, r, q))
    # Deep ITM, 1 day: the time value (~1e-80) is far below an ulp of the intrinsic value, so
    # the price is the intrinsic value plus rounding; any sigma "fits". NaN, not a guess.
    p = black_scholes_price(True, S, 60.0, 1 / 365, r, 0.2, q)
    assert np.isnan(implied_volatility(p, True, S, 60.0, 1 / 365, r, q))
    # Whereas with the time value above the noise the same strike is recovered exactly.
    p = black_scholes_price(True, S, 60.0, 1.0, r, 0.6, q)
    assert implied_volatility(p, True, S, 60.0, 1.0, r, q) == pytest.approx(0.6, abs=TOL)


def test_looser_resolution_trades_accuracy_for_coverage():
    rng = np.random.default_rng(5)
    n = 50_000
    K = 100.0 * np.exp(rng.uniform(np.log(0.5), np.log(2.0), n))
    t = np.exp(rng.uniform(np.log(1 / 365), np.log(2.0), n))
    sigma = np.exp(rng.uniform(np.log(0.05), np.log(2.0), n))
    is_call = rng.random(n) < 0.5
    price = black_scholes_price(is_call, 100.0, K, t, 0.02, sigma, 0.0)
    strict = implied_volatility(price, is_call, 100.0, K, t, 0.02, 0.0)
    loose = implied_volatility(price, is_call, 100.0, K, t, 0.02, 0.0, vol_resolution=1e-6)
    assert np.isnan(loose).sum() < np.isnan(strict).sum()
    assert np.nanmax(np.abs(loose - sigma)) <= 1e-6


@pytest.mark.parametrize("flag,S,K,t,r,sigma,q", [
    ("c", 100.0, 100.0, 0.5, 0.01, 0.2, 0.0),
    ("p", 100.0, 70.0, 0.1, 0.05, 0.45, 0.02),
    ("c", 20_000.0, 22_000.0, 3 / 365, 0.065, 0.18, 0.0),
    ("p", 250.0, 400.0, 1.5, 0.03, 1.2, 0.01),
])
def test_reference_against_py_vollib_implied_volatility(flag, S, K, t, r, sigma, q):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from py_vollib.black_scholes_merton import black_scholes_merton
        from py_vollib.black_scholes_merton.implied_volatility import implied_volatility as pv_iv
    price = black_scholes_merton(flag, S, K, t, r, sigma, q)
    ours = float(implied_volatility(price, flag, S, K, t, r, q))
    assert ours == pytest.approx(pv_iv(price, S, K, t, r, q, flag), abs=1e-10)
    assert ours == pytest.approx(sigma, abs=TOL)


def test_shapes_and_scalars():
    assert np.shape(implied_volatility(5.0, True, 100.0, 100.0, 0.5, 0.0)) == ()
    K = np.array([[90.0, 100.0], [110.0, 120.0]])
    p = black_scholes_price(True, 100.0, K, 0.5, 0.02, 0.3)
    np.testing.assert_allclose(implied_volatility(p, "c", 100.0, K, 0.5, 0.02), 0.3, atol=TOL)
    assert implied_volatility(np.array([]), True, 100.0, 100.0, 0.5, 0.0).shape == (0,)
