"""Black-Scholes-Merton prices, vectorised over whole chains.

Conventions shared by every module of `quant` (the argument order of py_vollib):

    (is_call, S, K, t, r, sigma, q)

* `is_call`: boolean (array). True = call, False = put. For py_vollib compatibility the
  strings "c"/"p" (any case, or "call"/"put") are also accepted and converted once.
* `S` spot, `K` strike, `t` time to expiry in YEARS, `r` continuously compounded rate,
  `sigma` annualised volatility (0.2 = 20%), `q` continuous dividend yield.
* Every argument broadcasts with numpy rules; scalars stay scalars internally, so a chain
  with one spot, expiry and rate costs one exp() for the discount factors, not one per strike.
  Results are float64 arrays of the broadcast shape (0-d for all-scalar input: float() it).

Edge cases: at t <= 0 or sigma <= 0 the price is the discounted intrinsic value of the
forward, max(±(S·e^{-qt} - K·e^{-rt}), 0), computed without NaN or divide warnings.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

from quant._vectorize import run_chunked

FloatArray = NDArray[np.float64]


def as_is_call(flag: ArrayLike) -> NDArray[np.bool_]:
    """Normalise a flag (bools, or "c"/"p"/"call"/"put" strings) to a boolean array."""
    arr = np.asarray(flag)
    if arr.dtype.kind in "US":
        low = np.char.lower(arr.astype(str))
        is_call = (low == "c") | (low == "call")
        if not np.all(is_call | (low == "p") | (low == "put")):
            raise ValueError("flag strings must be 'c'/'p' (or 'call'/'put')")
        return is_call
    if arr.dtype.kind == "O":
        return as_is_call(arr.astype(str)) if arr.size and isinstance(arr.flat[0], str) else arr.astype(bool)
    return arr.astype(bool, copy=False)


def _floats(*args: ArrayLike) -> list[FloatArray]:
    return [np.asarray(a, dtype=np.float64) for a in args]


def d1_d2(S, K, t, r, sigma, q) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(d1, d2, sigma*sqrt(t)); the caller guards t > 0 and sigma > 0."""
    vol_sqrt_t = sigma * np.sqrt(t)
    d1 = (np.log(S / K) + (r - q) * t) / vol_sqrt_t + 0.5 * vol_sqrt_t
    return d1, d1 - vol_sqrt_t, vol_sqrt_t


def _sign(is_call: ArrayLike) -> FloatArray:
    """+1.0 for calls, -1.0 for puts (scalar stays 0-d)."""
    return np.where(as_is_call(is_call), 1.0, -1.0)


def _price_kernel(sign, S, K, t, r, sigma, q) -> tuple[FloatArray]:
    s_dfq = S * np.exp(-q * t)
    k_dfr = K * np.exp(-r * t)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        if np.min(t) > 0 and np.min(sigma) > 0:   # the usual case: no masking needed
            d1, d2, _ = d1_d2(S, K, t, r, sigma, q)
            price = sign * (s_dfq * ndtr(sign * d1) - k_dfr * ndtr(sign * d2))
        else:
            live = ~((t <= 0) | (sigma <= 0))  # NaN inputs stay on the formula: NaN out
            d1, d2, _ = d1_d2(S, K, np.where(live, t, 1.0), r, np.where(live, sigma, 1.0), q)
            price = sign * (s_dfq * ndtr(sign * d1) - k_dfr * ndtr(sign * d2))
            t0 = np.maximum(t, 0.0)  # an expired option (t < 0) is worth its intrinsic value
            intrinsic = np.maximum(sign * (S * np.exp(-q * t0) - K * np.exp(-r * t0)), 0.0)
            price = np.where(live, price, intrinsic)
    # Never negative: rounding in the difference of the two terms can give -1e-17.
    return (np.maximum(price, 0.0),)


def black_scholes_price(is_call: ArrayLike, S: ArrayLike, K: ArrayLike, t: ArrayLike, r: ArrayLike,
                        sigma: ArrayLike, q: ArrayLike = 0.0) -> FloatArray:
    """Option price (discounted, in units of S).

    call = S e^{-qt} N(d1) - K e^{-rt} N(d2);  put = K e^{-rt} N(-d2) - S e^{-qt} N(-d1).
    """
    (price,) = run_chunked(_price_kernel, [_sign(is_call), *_floats(S, K, t, r, sigma, q)], 1)
    return price
