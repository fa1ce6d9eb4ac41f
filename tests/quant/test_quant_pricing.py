"""Black-Scholes-Merton prices and Greeks: parity, bounds, finite differences, py_vollib."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import black_scholes_price, delta, gamma, greeks, rho, theta, to_trader_units, vega

EPS = np.finfo(float).eps

spot = st.floats(1.0, 10_000.0)
moneyness = st.floats(0.5, 2.0)
expiry = st.floats(1 / 365, 2.0)
vol = st.floats(0.05, 2.0)
rate = st.floats(-0.02, 0.10)
div = st.floats(0.0, 0.06)


def _scale(S, K, t, r, q):
    """The size of the two Black-Scholes terms: rounding errors are ulps of this."""
    return S * np.exp(-q * t) + K * np.exp(-r * t)


@settings(max_examples=300, deadline=None)
@given(S=spot, m=moneyness, t=expiry, r=rate, sigma=vol, q=div)
def test_put_call_parity_with_dividends(S, m, t, r, sigma, q):
    K = S * m
    call = black_scholes_price(True, S, K, t, r, sigma, q)
    put = black_scholes_price(False, S, K, t, r, sigma, q)
    forward_value = S * np.exp(-q * t) - K * np.exp(-r * t)
    assert abs((call - put) - forward_value) <= 8 * EPS * _scale(S, K, t, r, q)


@settings(max_examples=300, deadline=None)
@given(S=spot, m=moneyness, t=expiry, r=rate, sigma=vol, q=div, is_call=st.booleans())
def test_price_within_no_arbitrage_bounds(S, m, t, r, sigma, q, is_call):
    K = S * m
    price = float(black_scholes_price(is_call, S, K, t, r, sigma, q))
    s_dfq, k_dfr = S * np.exp(-q * t), K * np.exp(-r * t)
    lower = max(s_dfq - k_dfr, 0.0) if is_call else max(k_dfr - s_dfq, 0.0)
    upper = s_dfq if is_call else k_dfr
    tol = 8 * EPS * _scale(S, K, t, r, q)
    assert lower - tol <= price <= upper + tol
    assert price >= 0.0


def _central(f, x, h):
    return (f(x + h) - f(x - h)) / (2 * h)


@settings(max_examples=200, deadline=None)
@given(m=moneyness, t=st.floats(0.02, 2.0), r=rate, sigma=st.floats(0.05, 1.0), q=div,
       is_call=st.booleans())
def test_greeks_match_central_finite_differences(m, t, r, sigma, q, is_call):
    """Raw units: per unit S, per unit sigma, theta = -dV/dt per year, per unit r."""
    S, K = 100.0, 100.0 * m
    g = greeks(is_call, S, K, t, r, sigma, q)
    price = lambda **kw: float(black_scholes_price(is_call, kw.get("S", S), K, kw.get("t", t),  # noqa: E731
                                                   kw.get("r", r), kw.get("sigma", sigma), q))
    h_s = 1e-3 * S * sigma * np.sqrt(t)  # the width of the price's curvature in S
    fd_delta = _central(lambda x: price(S=x), S, h_s)
    fd_gamma = _central(lambda x: float(delta(is_call, x, K, t, r, sigma, q)), S, h_s)
    fd_vega = _central(lambda x: price(sigma=x), sigma, 1e-4 * sigma)
    fd_theta = -_central(lambda x: price(t=x), t, 1e-5 * t)
    fd_rho = _central(lambda x: price(r=x), r, 1e-5)
    assert g.delta == pytest.approx(fd_delta, rel=1e-5, abs=1e-8)
    assert g.gamma == pytest.approx(fd_gamma, rel=1e-5, abs=1e-8)
    assert g.vega == pytest.approx(fd_vega, rel=1e-5, abs=1e-6)
    assert g.theta == pytest.approx(fd_theta, rel=1e-5, abs=1e-5)
    assert g.rho == pytest.approx(fd_rho, rel=1e-5, abs=1e-6)


def test_single_greek_functions_equal_the_single_pass():
    rng = np.random.default_rng(7)
    K = rng.uniform(50, 200, 1000)
    sigma = rng.uniform(0.05, 2, 1000)
    is_call = rng.random(1000) < 0.5
    args = (is_call, 100.0, K, 0.3, 0.04, sigma, 0.01)
    g = greeks(*args)
    np.testing.assert_array_equal(g.price, black_scholes_price(*args))
    for fn, field in ((delta, g.delta), (gamma, g.gamma), (vega, g.vega), (theta, g.theta), (rho, g.rho)):
        np.testing.assert_allclose(fn(*args), field, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("flag", ["c", "p"])
@pytest.mark.parametrize("S,K,t,r,sigma,q", [
    (100.0, 100.0, 0.5, 0.01, 0.2, 0.0),
    (49.0, 50.0, 0.3846, 0.05, 0.2, 0.0),       # Hull's example
    (100.0, 80.0, 0.05, 0.03, 0.6, 0.02),
    (20_000.0, 21_500.0, 7 / 365, 0.065, 0.14, 0.012),
    (100.0, 150.0, 2.0, 0.0, 1.5, 0.04),
])
def test_reference_values_against_py_vollib(flag, S, K, t, r, sigma, q):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from py_vollib.black_scholes_merton import black_scholes_merton
        from py_vollib.black_scholes_merton.greeks import analytical
    # py_vollib's analytical Greeks: vega and rho per 1%, theta per day = our trader units
    g = to_trader_units(greeks(flag == "c", S, K, t, r, sigma, q))
    expected = black_scholes_merton(flag, S, K, t, r, sigma, q)
    assert g.price == pytest.approx(expected, rel=1e-12, abs=1e-12 * S)
    assert g.delta == pytest.approx(analytical.delta(flag, S, K, t, r, sigma, q), rel=1e-12, abs=1e-15)
    assert g.gamma == pytest.approx(analytical.gamma(flag, S, K, t, r, sigma, q), rel=1e-12)
    assert g.vega == pytest.approx(analytical.vega(flag, S, K, t, r, sigma, q), rel=1e-12)
    assert g.theta == pytest.approx(analytical.theta(flag, S, K, t, r, sigma, q), rel=1e-12)
    assert g.rho == pytest.approx(analytical.rho(flag, S, K, t, r, sigma, q), rel=1e-12, abs=1e-15)


def test_trader_units_are_the_documented_scalings():
    g = greeks(True, 100.0, 105.0, 0.25, 0.03, 0.3, 0.01)
    tu = to_trader_units(g)
    assert (tu.price, tu.delta, tu.gamma) == (g.price, g.delta, g.gamma)
    assert tu.vega == g.vega / 100 and tu.theta == g.theta / 365 and tu.rho == g.rho / 100


def test_expiry_and_zero_vol_are_discounted_forward_intrinsic_without_warnings():
    S, K = 100.0, np.array([90.0, 100.0, 110.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        at_expiry = black_scholes_price(True, S, K, 0.0, 0.05, 0.2, 0.0)
        zero_vol = black_scholes_price(False, S, K, 1.0, 0.05, 0.0, 0.02)
        tiny = black_scholes_price(True, S, K, 1e-300, 0.05, 0.2, 0.0)
        g0 = greeks(True, S, K, 0.0, 0.05, 0.2, 0.0)
        gz = greeks(False, S, K, 1.0, 0.05, 0.0, 0.02)
    np.testing.assert_array_equal(at_expiry, [10.0, 0.0, 0.0])
    np.testing.assert_allclose(zero_vol, np.maximum(K * np.exp(-0.05) - S * np.exp(-0.02), 0.0), rtol=1e-15)
    np.testing.assert_allclose(tiny, [10.0, 0.0, 0.0], atol=1e-12)
    np.testing.assert_array_equal(g0.delta, [1.0, 0.0, 0.0])
    np.testing.assert_array_equal(g0.gamma, [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(g0.vega, [0.0, 0.0, 0.0])
    for g in (g0, gz):
        assert all(np.all(np.isfinite(field)) for field in g)
    # sigma = 0: the put on K=110 is in the money: delta = -e^{-qt}, rho = -K t e^{-rt}
    assert gz.delta[2] == pytest.approx(-np.exp(-0.02))
    assert gz.rho[2] == pytest.approx(-110.0 * np.exp(-0.05))


def test_nan_inputs_give_nan_not_intrinsic():
    price = black_scholes_price(True, 100.0, [90.0, 90.0, 90.0], [0.5, np.nan, 0.5], 0.01, [np.nan, 0.2, 0.2])
    assert np.isnan(price[0]) and np.isnan(price[1]) and price[2] > 10.0
    g = greeks(False, 100.0, 90.0, 0.5, 0.01, [np.nan, 0.2])
    assert all(np.isnan(field[0]) and np.isfinite(field[1]) for field in g)


def test_broadcasting_scalars_and_flag_strings():
    K = np.array([[90.0, 100.0], [110.0, 120.0]])
    out = black_scholes_price(np.array([["c", "p"], ["C", "put"]]), 100.0, K, 0.5, 0.02, 0.25)
    assert out.shape == (2, 2)
    assert out[0, 1] == black_scholes_price(False, 100.0, 100.0, 0.5, 0.02, 0.25)
    assert np.shape(black_scholes_price(True, 100.0, 100.0, 0.5, 0.02, 0.25)) == ()
    assert greeks(True, 100.0, np.linspace(80, 120, 50_000), 0.5, 0.02, 0.25).delta.shape == (50_000,)
    with pytest.raises(ValueError):
        black_scholes_price("x", 100.0, 100.0, 0.5, 0.02, 0.25)


def test_chunked_evaluation_equals_direct():
    """Large inputs are processed in cache-sized chunks; results must not depend on it."""
    rng = np.random.default_rng(3)
    n = 70_000
    args = (rng.random(n) < 0.5, rng.uniform(50, 150, n), 100.0, rng.uniform(0.01, 2, n), 0.03,
            rng.uniform(0.05, 2, n), 0.01)
    big = greeks(*args)
    for lo, hi in ((0, 1000), (16_000, 17_000), (n - 500, n)):
        small = greeks(*(a[lo:hi] if np.ndim(a) else a for a in args))
        for b, s in zip(big, small):
            np.testing.assert_array_equal(b[lo:hi], s)
