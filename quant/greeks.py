"""Black-Scholes-Merton Greeks (continuous dividend yield q), vectorised.

Arguments as everywhere in `quant`: (is_call, S, K, t, r, sigma, q); see `black_scholes`.

Units are RAW mathematical derivatives, so finite differences of the price check them:

* delta = dV/dS            (per unit of S)
* gamma = d2V/dS2          (per unit of S, squared)
* vega  = dV/dsigma        (per unit of sigma: 1.0 = 100 vol points)
* theta = -dV/dt           (per YEAR of calendar time passing; negative = decay)
* rho   = dV/dr            (per unit of r: 1.0 = 100%)

`to_trader_units` converts to what records published to users carry: vega per 1 vol point
(/100), theta per calendar day (/365), rho per 1% rate move (/100) - the same units as
py_vollib's analytical Greeks.

At the degenerate boundary t <= 0 or sigma <= 0 the option is its discounted forward
intrinsic value: delta is the step (e^{-qt} in the money, 0 out of it and at the money),
gamma and vega are 0, theta and rho keep only the carry terms of the intrinsic value.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtr

from quant._vectorize import run_chunked
from quant.black_scholes import FloatArray, _floats, _sign

_INV_SQRT_2PI = 0.3989422804014327


class Greeks(NamedTuple):
    """Price and all first-order Greeks (+gamma), arrays of the broadcast shape."""

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray
    rho: FloatArray


def _core(sign, S, K, t, r, sigma, q):
    """Shared pieces: N(sign*d1), N(sign*d2), pdf(d1), S e^{-qt}, K e^{-rt}, sqrt(t), 1/(sigma*sqrt(t)).

    For dead elements (t <= 0 or sigma <= 0) N(.) is the in-the-money step and pdf is 0.
    """
    s_dfq = S * np.exp(-q * t)
    k_dfr = K * np.exp(-r * t)
    live = ~((t <= 0) | (sigma <= 0))  # NaN inputs stay on the formula: NaN out
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if np.all(live):
            sqrt_t = np.sqrt(t)
            vst = sigma * sqrt_t
            d1 = (np.log(S / K) + (r - q) * t) / vst + 0.5 * vst
            d2 = d1 - vst
            nd1, nd2 = ndtr(sign * d1), ndtr(sign * d2)
            pdf = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
            inv_vst = 1.0 / vst
        else:
            t1 = np.where(live, t, 1.0)
            sqrt_t = np.sqrt(t1)
            vst = np.where(live, sigma, 1.0) * sqrt_t
            d1 = (np.log(S / K) + (r - q) * t1) / vst + 0.5 * vst
            d2 = d1 - vst
            itm = (sign * (s_dfq - k_dfr) > 0).astype(np.float64)
            nd1 = np.where(live, ndtr(sign * d1), itm)
            nd2 = np.where(live, ndtr(sign * d2), itm)
            pdf = np.where(live, _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1), 0.0)
            sqrt_t = np.where(live, sqrt_t, np.sqrt(np.maximum(t, 0.0)))
            inv_vst = np.where(live, 1.0 / vst, 0.0)  # pdf is 0 there too: no 0 * inf
    return nd1, nd2, pdf, s_dfq, k_dfr, sqrt_t, inv_vst


def _greeks_kernel(sign, S, K, t, r, sigma, q):
    if np.min(t) > 0 and np.min(sigma) > 0:
        return _greeks_live(sign, S, K, t, r, sigma, q)
    nd1, nd2, pdf, s_dfq, k_dfr, sqrt_t, inv_vst = _core(sign, S, K, t, r, sigma, q)
    a = s_dfq * nd1
    b = k_dfr * nd2
    price = np.maximum(sign * (a - b), 0.0)
    delta = (sign * a) / S
    s_pdf = s_dfq * pdf
    gamma = s_pdf * inv_vst / (S * S)
    vega = s_pdf * sqrt_t
    theta = sign * (q * a - r * b) - 0.5 * sigma * sigma * s_pdf * inv_vst
    rho = sign * t * b
    return price, delta, gamma, vega, theta, rho


def _greeks_live(sign, S, K, t, r, sigma, q):
    """The hot path (t > 0, sigma > 0 everywhere): the same formulas with in-place ufuncs,
    so a chunk allocates few temporaries (this is most of the cost after the two CDFs)."""
    sqrt_t = np.sqrt(t)
    vst = sigma * sqrt_t
    inv_vst = 1.0 / vst
    d1 = (np.log(S / K) + (r - q) * t) / vst + 0.5 * vst  # as black_scholes.d1_d2: same bits
    s_dfq = S * np.exp(-q * t)
    s_pdf = (_INV_SQRT_2PI * s_dfq) * np.exp(-0.5 * d1 * d1)  # S e^{-qt} n(d1)
    a = sign * d1                                             # full-size: sign is
    b = a - sign * vst                                        # ±d2
    ndtr(a, out=a)
    a *= s_dfq                                                # S e^{-qt} N(±d1)
    ndtr(b, out=b)
    b *= K * np.exp(-r * t)                                   # K e^{-rt} N(±d2)
    price = a - b
    price *= sign
    np.maximum(price, 0.0, out=price)
    delta = a * sign
    delta /= S
    g0 = s_pdf * inv_vst                                      # S^2 * gamma
    gamma = g0 / (S * S)
    vega = s_pdf * sqrt_t
    theta = q * a
    theta -= r * b
    theta *= sign
    g0 *= 0.5 * sigma * sigma
    theta -= g0
    rho = b * (sign * t)
    return price, delta, gamma, vega, theta, rho


def greeks(is_call: ArrayLike, S: ArrayLike, K: ArrayLike, t: ArrayLike, r: ArrayLike,
           sigma: ArrayLike, q: ArrayLike = 0.0) -> Greeks:
    """Price, delta, gamma, vega, theta, rho in one pass (raw units, see module docstring).

    One pass shares the two normal CDFs and the density between all six outputs, which is
    what makes pricing a whole market per tick cheap.
    """
    return Greeks(*run_chunked(_greeks_kernel, [_sign(is_call), *_floats(S, K, t, r, sigma, q)], 6))


def delta(is_call, S, K, t, r, sigma, q=0.0) -> FloatArray:
    """dV/dS = ±e^{-qt} N(±d1)."""
    def kernel(sign, S, K, t, r, sigma, q):
        nd1 = _core(sign, S, K, t, r, sigma, q)[0]
        return (sign * np.exp(-q * t) * nd1,)
    return run_chunked(kernel, [_sign(is_call), *_floats(S, K, t, r, sigma, q)], 1)[0]


def gamma(is_call, S, K, t, r, sigma, q=0.0) -> FloatArray:
    """d2V/dS2 = e^{-qt} n(d1) / (S sigma sqrt(t)); the same for calls and puts."""
    def kernel(sign, S, K, t, r, sigma, q):
        _, _, pdf, s_dfq, _, _, inv_vst = _core(sign, S, K, t, r, sigma, q)
        return (s_dfq * pdf * inv_vst / (S * S),)
    return run_chunked(kernel, [_sign(is_call), *_floats(S, K, t, r, sigma, q)], 1)[0]


def vega(is_call, S, K, t, r, sigma, q=0.0) -> FloatArray:
    """dV/dsigma = S e^{-qt} n(d1) sqrt(t), per unit of sigma."""
    def kernel(sign, S, K, t, r, sigma, q):
        _, _, pdf, s_dfq, _, sqrt_t, _ = _core(sign, S, K, t, r, sigma, q)
        return (s_dfq * pdf * sqrt_t,)
    return run_chunked(kernel, [_sign(is_call), *_floats(S, K, t, r, sigma, q)], 1)[0]


def theta(is_call, S, K, t, r, sigma, q=0.0) -> FloatArray:
    """-dV/dt per year: -S e^{-qt} n(d1) sigma / (2 sqrt t) ± (q S e^{-qt} N(±d1) - r K e^{-rt} N(±d2))."""
    return greeks(is_call, S, K, t, r, sigma, q).theta


def rho(is_call, S, K, t, r, sigma, q=0.0) -> FloatArray:
    """dV/dr = ±K t e^{-rt} N(±d2), per unit of r."""
    def kernel(sign, S, K, t, r, sigma, q):
        _, nd2, _, _, k_dfr, _, _ = _core(sign, S, K, t, r, sigma, q)
        return (sign * t * k_dfr * nd2,)
    return run_chunked(kernel, [_sign(is_call), *_floats(S, K, t, r, sigma, q)], 1)[0]


def to_trader_units(g: Greeks) -> Greeks:
    """Vega per 1 vol point (/100), theta per calendar day (/365), rho per 1% rate move (/100)."""
    return Greeks(g.price, g.delta, g.gamma, g.vega / 100.0, g.theta / 365.0, g.rho / 100.0)
