"""GBM: exact log-normal transition, seeded reproducibility."""
from __future__ import annotations

import numpy as np

from quant import gbm_paths, gbm_step


def test_paths_are_reproducible_for_a_seed_and_start_at_s0():
    a = gbm_paths(100.0, 0.05, 0.2, 1 / 252, 10, 5, np.random.default_rng(42))
    b = gbm_paths(100.0, 0.05, 0.2, 1 / 252, 10, 5, 42)
    assert a.shape == (5, 11)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[:, 0], 100.0)
    assert np.all(a > 0)


def test_step_is_the_exact_lognormal_transition():
    z = np.array([-1.0, 0.0, 2.0])
    out = gbm_step(np.array([100.0, 100.0, 50.0]), 0.1, 0.3, 0.5, z)
    expected = np.array([100.0, 100.0, 50.0]) * np.exp((0.1 - 0.045) * 0.5 + 0.3 * np.sqrt(0.5) * z)
    np.testing.assert_allclose(out, expected, rtol=1e-15)
    # chaining steps with the same draws reproduces the paths
    rng = np.random.default_rng(7)
    paths = gbm_paths(100.0, 0.1, 0.3, 0.01, 3, 4, rng)
    z = np.random.default_rng(7).standard_normal((4, 3))
    s = np.full(4, 100.0)
    for k in range(3):
        s = gbm_step(s, 0.1, 0.3, 0.01, z[:, k])
    np.testing.assert_allclose(paths[:, -1], s, rtol=1e-13)


def test_terminal_moments_match_the_lognormal_law():
    mu, sigma, T, n = 0.08, 0.4, 1.0, 200_000
    paths = gbm_paths(100.0, mu, sigma, T / 4, 4, n, np.random.default_rng(1))
    log_ret = np.log(paths[:, -1] / 100.0)
    # coarse steps are exact: mean (mu - sigma^2/2) T, variance sigma^2 T, E[S_T] = S0 e^{mu T}
    assert abs(log_ret.mean() - (mu - 0.5 * sigma**2) * T) < 5 * sigma / np.sqrt(n)
    assert abs(log_ret.var() - sigma**2 * T) < 0.01
    assert abs(paths[:, -1].mean() / (100.0 * np.exp(mu * T)) - 1.0) < 0.01
