"""Price and Greeks in one vectorised pass (Black-Scholes-Merton with dividend yield q).

Raw units, as derivatives: delta per unit of S, gamma per unit of S², vega per unit of
sigma (1.0 = 100 vol points), theta per YEAR (dV/dt of calendar time, negative for decay),
rho per unit of r. `to_trader_units` converts to what records publish.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy.special import ndtr

from quant.black_scholes import d1_d2

_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


class Greeks(NamedTuple):
    price: np.ndarray
    delta: np.ndarray
    gamma: np.ndarray
    vega: np.ndarray
    theta: np.ndarray
    rho: np.ndarray


def greeks(is_call, S, K, t, r, sigma, q=0.0) -> Greeks:
    """All Greeks for t > 0 and sigma > 0 (callers floor t; the feed uses at least a minute)."""
    is_call, S, K, t, r, sigma, q = np.broadcast_arrays(
        np.asarray(is_call, bool), *(np.asarray(x, float) for x in (S, K, t, r, sigma, q)))
    d1, d2, vol_sqrt_t = d1_d2(S, K, t, r, sigma, q)
    sign = np.where(is_call, 1.0, -1.0)
    df_r, df_q = np.exp(-r * t), np.exp(-q * t)
    nd1, nd2 = ndtr(sign * d1), ndtr(sign * d2)
    pdf_d1 = _INV_SQRT_2PI * np.exp(-0.5 * d1 * d1)
    s_dfq, k_dfr = S * df_q, K * df_r
    price = sign * (s_dfq * nd1 - k_dfr * nd2)
    delta = sign * df_q * nd1
    gamma = df_q * pdf_d1 / (S * vol_sqrt_t)
    vega = s_dfq * pdf_d1 * np.sqrt(t)
    theta = (-s_dfq * pdf_d1 * sigma / (2.0 * np.sqrt(t))
             - sign * r * k_dfr * nd2 + sign * q * s_dfq * nd1)
    rho = sign * k_dfr * t * nd2
    return Greeks(price, delta, gamma, vega, theta, rho)


def to_trader_units(g: Greeks) -> Greeks:
    """Vega per 1 vol point, theta per calendar day, rho per 1% rate move."""
    return Greeks(g.price, g.delta, g.gamma, g.vega / 100.0, g.theta / 365.0, g.rho / 100.0)
