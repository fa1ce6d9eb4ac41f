"""Geometric Brownian Motion with the exact log-normal step (no discretisation bias)."""
from __future__ import annotations

import numpy as np


def gbm_step(s, mu, sigma, dt: float, z) -> np.ndarray:
    """S(t+dt) from S(t) given standard normal draws z (one per element of s)."""
    return np.asarray(s, float) * np.exp((mu - 0.5 * np.square(sigma)) * dt + sigma * np.sqrt(dt) * z)


def gbm_paths(s0: float, mu: float, sigma: float, dt: float, n_steps: int, n_paths: int,
              rng: np.random.Generator) -> np.ndarray:
    """Array (n_paths, n_steps + 1) of prices, starting at s0."""
    z = rng.standard_normal((n_paths, n_steps))
    log_increments = (mu - 0.5 * sigma * sigma) * dt + sigma * np.sqrt(dt) * z
    log_paths = np.concatenate([np.zeros((n_paths, 1)), np.cumsum(log_increments, axis=1)], axis=1)
    return s0 * np.exp(log_paths)
