"""Black-Scholes-Merton prices, vectorised; argument order `(is_call, S, K, t, r, sigma, q)`.

`is_call` is a boolean (array): True for calls, False for puts. Every argument broadcasts.
t is in years, r and q are continuously compounded, sigma is annualised.
"""
from __future__ import annotations

import numpy as np
from scipy.special import ndtr

ArrayLike = np.ndarray | float


def d1_d2(S, K, t, r, sigma, q) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(d1, d2, sigma*sqrt(t)); the caller guards t, sigma > 0."""
    vol_sqrt_t = sigma * np.sqrt(t)
    d1 = (np.log(S / K) + (r - q + 0.5 * sigma * sigma) * t) / vol_sqrt_t
    return d1, d1 - vol_sqrt_t, vol_sqrt_t


def black_scholes_price(is_call, S, K, t, r, sigma, q=0.0) -> np.ndarray:
    """Option price. At t → 0 or sigma → 0 it is the discounted intrinsic value of the forward."""
    is_call, S, K, t, r, sigma, q = np.broadcast_arrays(
        np.asarray(is_call, bool), *(np.asarray(x, float) for x in (S, K, t, r, sigma, q)))
    df_r, df_q = np.exp(-r * t), np.exp(-q * t)
    live = (t > 0) & (sigma > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d1, d2, _ = d1_d2(S, K, np.where(live, t, 1.0), r, np.where(live, sigma, 1.0), q)
    sign = np.where(is_call, 1.0, -1.0)
    price = sign * (S * df_q * ndtr(sign * d1) - K * df_r * ndtr(sign * d2))
    intrinsic = np.maximum(sign * (S * df_q - K * df_r), 0.0)
    return np.where(live, price, intrinsic)
