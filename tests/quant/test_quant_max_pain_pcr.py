"""Max pain (fast O(S) rule vs the O(S^2) definition) and put/call ratios."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from quant import max_pain, max_pain_bruteforce, max_pain_payouts, pcr_oi, pcr_volume, put_call_ratio


@st.composite
def chains(draw, max_strikes=60, unique=True):
    n = draw(st.integers(1, max_strikes))
    ticks = st.integers(1, 4000)
    raw = draw(st.lists(ticks, min_size=n, max_size=n, unique=unique))
    step = draw(st.sampled_from([0.5, 1.0, 25.0, 50.0]))
    strikes = np.array(raw, dtype=float) * step
    oi = st.integers(0, 2_000_000)
    # many zeros and repeated values make exact ties between strikes likely
    oi = st.one_of(st.just(0), st.sampled_from([1, 100, 5000]), oi)
    calls = np.array(draw(st.lists(oi, min_size=n, max_size=n)), dtype=float)
    puts = np.array(draw(st.lists(oi, min_size=n, max_size=n)), dtype=float)
    return strikes, calls, puts


@settings(max_examples=300, deadline=None)
@given(chains())
def test_max_pain_equals_bruteforce(chain):
    strikes, calls, puts = chain
    assert max_pain(strikes, calls, puts) == max_pain_bruteforce(strikes, calls, puts)


@settings(max_examples=200, deadline=None)
@given(chains(unique=False))
def test_max_pain_with_duplicate_strikes_equals_bruteforce(chain):
    strikes, calls, puts = chain
    assert max_pain(strikes, calls, puts) == max_pain_bruteforce(strikes, calls, puts)


@settings(max_examples=200, deadline=None)
@given(chains(), st.randoms(use_true_random=False))
def test_max_pain_ignores_input_order_and_payouts_match_definition(chain, rnd):
    strikes, calls, puts = chain
    perm = np.array(rnd.sample(range(strikes.size), strikes.size))
    assert max_pain(strikes[perm], calls[perm], puts[perm]) == max_pain(strikes, calls, puts)
    K, pay = max_pain_payouts(strikes[perm], calls[perm], puts[perm])
    settle = K[:, None]
    order = np.argsort(strikes)
    direct = (calls[order] * np.maximum(settle - K, 0)).sum(1) \
        + (puts[order] * np.maximum(K - settle, 0)).sum(1)
    np.testing.assert_array_equal(K, strikes[order])
    np.testing.assert_allclose(pay, direct, rtol=1e-12, atol=1e-6)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(1, 1e5), st.floats(0, 1e6), st.floats(0, 1e6)), min_size=1,
                max_size=40, unique_by=lambda x: x[0]))
def test_max_pain_with_fractional_open_interest_is_a_minimiser(rows):
    """With float OI exact ties can differ in rounding; the strike found must still have the
    minimum payout up to rounding."""
    strikes, calls, puts = (np.array(c) for c in zip(*rows))
    K, pay = max_pain_payouts(strikes, calls, puts)
    found = max_pain(strikes, calls, puts)
    assert pay[K == found][0] <= pay.min() * (1 + 1e-9) + 1e-6


def test_max_pain_small_examples_and_edge_cases():
    assert max_pain([90, 100, 110], [10, 5, 1], [1, 5, 10]) == 100.0
    assert max_pain([100, 110], [0, 0], [0, 0]) == 100.0          # all ties: the lowest strike
    assert max_pain([100, 110, 120], [0, 0, 0], [0, 0, 9]) == 120.0  # only puts: settle high
    assert max_pain([100, 110, 120], [9, 0, 0], [0, 0, 0]) == 100.0  # only calls: settle low
    assert max_pain([105.0], [3.0], [4.0]) == 105.0
    assert math.isnan(max_pain([], [], []))
    assert max_pain([90, 100, 110], [10, np.nan, 1], [1, 5, np.nan]) == \
        max_pain([90, 100, 110], [10, 0, 1], [1, 5, 0])
    with pytest.raises(ValueError):
        max_pain([90, 100], [1, -1], [0, 0])
    with pytest.raises(ValueError):
        max_pain([90, 100], [1], [0, 0])


def test_max_pain_large_chain_matches_bruteforce():
    rng = np.random.default_rng(11)
    strikes = np.arange(5000) * 50.0 + 10_000.0
    calls = rng.integers(0, 10**7, 5000).astype(float)
    puts = rng.integers(0, 10**7, 5000).astype(float)
    assert max_pain(strikes, calls, puts) == max_pain_bruteforce(strikes, calls, puts)
    shuffled = rng.permutation(5000)
    assert max_pain(strikes[shuffled], calls[shuffled], puts[shuffled]) == max_pain(strikes, calls, puts)


def test_pcr_by_open_interest_and_volume():
    assert pcr_oi([100, 200, 300], [300, 300, 0]) == 1.0
    assert pcr_volume([10, 10], [5, 0]) == 0.25
    assert pcr_oi([100, np.nan], [50, np.nan]) == 0.5        # NaN entries are ignored
    assert math.isnan(pcr_oi([0, 0], [10, 20]))              # no calls: undefined, NaN (null in records)
    assert math.isnan(pcr_volume([], []))
    assert math.isnan(pcr_volume([np.nan], [3]))
    assert pcr_oi([10], [0]) == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**7), st.integers(0, 10**7)), min_size=0, max_size=50))
def test_pcr_is_the_ratio_of_totals(rows):
    calls = [c for c, _ in rows]
    puts = [p for _, p in rows]
    got = put_call_ratio(calls, puts)
    if sum(calls) == 0:
        assert math.isnan(got)
    else:
        assert got == pytest.approx(sum(puts) / sum(calls), rel=1e-15)
