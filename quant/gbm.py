"""Geometric Brownian Motion with the exact log-normal step (no discretisation bias).

    S(t+dt) = S(t) * exp((mu - sigma^2/2) dt + sigma sqrt(dt) Z),   Z ~ N(0, 1)

is the exact transition of dS = mu S dt + sigma S dW for any dt, so a coarse step is as
correct in distribution as a fine one. mu and sigma are annualised, dt is in years.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from quant.black_scholes import FloatArray


def gbm_step(s: ArrayLike, mu: ArrayLike, sigma: ArrayLike, dt: float, z: ArrayLike) -> FloatArray:
    """S(t+dt) from S(t) given standard normal draws z (broadcast with s, mu, sigma)."""
    sigma = np.asarray(sigma, dtype=np.float64)
    return np.asarray(s, dtype=np.float64) * np.exp(
        (np.asarray(mu, dtype=np.float64) - 0.5 * sigma * sigma) * dt + sigma * np.sqrt(dt) * np.asarray(z))


def gbm_paths(s0: float, mu: float, sigma: float, dt: float, n_steps: int, n_paths: int,
              rng: np.random.Generator | int | None = None) -> FloatArray:
    """Array (n_paths, n_steps + 1) of prices, column 0 = s0.

    `rng` is a numpy Generator (or a seed for one): the same seed gives the same paths.
    Paths are built as s0 * exp(cumulative sum of log increments), one draw per step.
    """
    if n_steps < 0 or n_paths < 0 or dt < 0:
        raise ValueError("n_steps, n_paths and dt must be non-negative")
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    z = gen.standard_normal((n_paths, n_steps))
    log_paths = np.empty((n_paths, n_steps + 1))
    log_paths[:, 0] = 0.0
    np.cumsum((mu - 0.5 * sigma * sigma) * dt + sigma * np.sqrt(dt) * z, axis=1, out=log_paths[:, 1:])
    return s0 * np.exp(log_paths)
