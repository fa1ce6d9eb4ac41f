"""The batch form of the chain analytics equals `chain_analytics` snapshot by snapshot."""
from __future__ import annotations

import math

import numpy as np
import pytest

from quant import chain_analytics, vol_surface_slice
from quant.chain import ChainMetrics, chain_analytics_batch, vol_surface_slice_batch

COLUMNS = ("call_oi", "put_oi", "call_volume", "put_volume", "call_iv", "put_iv", "call_price",
           "put_price")


def random_chain(rng: np.random.Generator, integer_oi: bool = True) -> dict:
    """A chain with what real and broken feeds produce: NaN IVs and prices (unquoted strikes),
    zero or NaN open interest, spot on a strike or exactly between two, one strike, shuffled."""
    n = int(rng.choice([1, 1, 2, 3, rng.integers(4, 60)]))
    step = float(rng.choice([0.5, 1.0, 50.0, 2.5]))
    K = float(rng.integers(1, 400)) * step + step * np.cumsum(rng.integers(1, 3, n))
    where = rng.random()
    if where < 0.3:
        spot = float(K[rng.integers(n)])  # on a strike
    elif where < 0.5 and n > 1:
        i = int(rng.integers(n - 1))
        spot = (K[i] + K[i + 1]) / 2  # ATM tie: the lower strike
    else:
        spot = float(rng.uniform(K[0] - 3 * step, K[-1] + 3 * step))
        spot = spot if spot > 0 else float(K[0])

    def oi() -> np.ndarray:
        if integer_oi:
            v = rng.integers(0, 5000, n).astype(float)
            v[rng.random(n) < 0.3] = 0.0
        else:
            v = rng.uniform(0, 5000, n)
        v[rng.random(n) < 0.1] = np.nan
        if rng.random() < 0.1:
            v[:] = 0.0  # a side without open interest: pcr undefined
        return v

    def maybe_nan(v: np.ndarray, p: float) -> np.ndarray:
        v[rng.random(n) < p] = np.nan
        if rng.random() < 0.05:
            v[:] = np.nan
        return v

    chain = {
        "spot": spot, "strikes": K,
        "call_oi": oi(), "put_oi": oi(),
        "call_volume": maybe_nan(rng.integers(0, 900, n).astype(float), 0.05),
        "put_volume": maybe_nan(rng.integers(0, 900, n).astype(float), 0.05),
        "call_iv": maybe_nan(rng.uniform(0.05, 0.9, n), 0.2),
        "put_iv": maybe_nan(rng.uniform(0.05, 0.9, n), 0.2),
        "call_price": maybe_nan(rng.uniform(0, 100, n), 0.1),
        "put_price": maybe_nan(rng.uniform(0, 100, n), 0.1),
    }
    if rng.random() < 0.3:
        perm = rng.permutation(n)
        chain = {k: (v[perm] if isinstance(v, np.ndarray) else v) for k, v in chain.items()}
    return chain


def tie_chain() -> dict:
    """Symmetric open interest: the payout is equal at 95, 100 and 105 (max pain: 95)."""
    K = np.array([90.0, 95.0, 100.0, 105.0, 110.0])
    return {"spot": 100.0, "strikes": K, "call_oi": np.array([0, 10, 0, 0, 0.0]),
            "put_oi": np.array([0, 0, 0, 10, 0.0]), "call_volume": np.ones(5), "put_volume": np.ones(5),
            "call_iv": np.full(5, 0.2), "put_iv": np.full(5, np.nan), "call_price": np.ones(5),
            "put_price": np.ones(5)}


def batch_of(chains: list[dict], **extra) -> object:
    return chain_analytics_batch([c["spot"] for c in chains], [len(c["strikes"]) for c in chains],
                                 np.concatenate([c["strikes"] for c in chains]),
                                 *(np.concatenate([c[k] for c in chains]) for k in COLUMNS), **extra)


def same(a: ChainMetrics, b: ChainMetrics, rel: float = 0.0) -> bool:
    for name, x in a.as_dict().items():
        y = getattr(b, name)
        if type(x) is not type(y):
            return False
        if isinstance(x, float) and math.isnan(x):
            if not math.isnan(y):
                return False
        elif x != y and not (rel and abs(x - y) <= rel * max(1.0, abs(x), abs(y))):
            return False
    return True


@pytest.mark.parametrize("seed", range(5))
def test_the_batch_equals_chain_analytics_on_random_chains(seed):
    rng = np.random.default_rng(seed)
    chains = [random_chain(rng) for _ in range(300)] + [tie_chain()]
    batch = batch_of(chains)
    assert len(batch) == len(chains)
    for i, c in enumerate(chains):
        want = chain_analytics(c["spot"], c["strikes"], *(c[k] for k in COLUMNS))
        assert same(batch.metrics(i), want), (i, batch.metrics(i), want)
    assert batch.metrics(len(chains) - 1).max_pain_strike == 95.0  # a tie: the lowest strike
    columns = batch.columns()
    assert columns["total_call_oi"][0] == batch.metrics(0).total_call_oi
    assert type(columns["total_call_oi"][0]) is int and type(columns["pcr_oi"][0]) is float


def test_with_the_previous_open_interest():
    rng = np.random.default_rng(11)
    chains = [random_chain(rng) for _ in range(200)]
    prev_c = [np.where(rng.random(len(c["strikes"])) < 0.1, np.nan, rng.integers(0, 5000, len(c["strikes"])))
              for c in chains]
    prev_p = [rng.integers(0, 5000, len(c["strikes"])).astype(float) for c in chains]
    batch = batch_of(chains, prev_call_oi=np.concatenate(prev_c), prev_put_oi=np.concatenate(prev_p))
    for i, c in enumerate(chains):
        want = chain_analytics(c["spot"], c["strikes"], *(c[k] for k in COLUMNS),
                               prev_call_oi=prev_c[i], prev_put_oi=prev_p[i])
        assert same(batch.metrics(i), want), i


def test_fractional_open_interest_agrees_to_rounding():
    rng = np.random.default_rng(5)
    chains = [random_chain(rng, integer_oi=False) for _ in range(300)]
    batch = batch_of(chains)
    for i, c in enumerate(chains):
        want = chain_analytics(c["spot"], c["strikes"], *(c[k] for k in COLUMNS))
        assert same(batch.metrics(i), want, rel=1e-12), i


def test_bad_input_raises_as_the_per_chain_function_does():
    good = tie_chain()
    for bad in ({"strikes": np.array([90.0, np.nan, 100.0, 105.0, 110.0])},
                {"call_oi": np.array([0, -1.0, 0, 0, 0])}, {"spot": 0.0}, {"spot": math.nan}):
        chain = dict(good, **bad)
        with pytest.raises(ValueError):
            chain_analytics(chain["spot"], chain["strikes"], *(chain[k] for k in COLUMNS))
        with pytest.raises(ValueError):
            batch_of([good, chain])
    with pytest.raises(ValueError):  # an empty chain
        chain_analytics_batch([100.0], [0], [], [], [], [], [], [], [], [], [])
    with pytest.raises(ValueError):  # columns that do not match the strikes
        chain_analytics_batch([100.0], [2], [1.0, 2.0], *([[1.0]] * 8))
    assert len(chain_analytics_batch([], [], *([[]] * 9))) == 0


@pytest.mark.parametrize("seed", range(3))
def test_the_slice_batch_equals_vol_surface_slice(seed):
    rng = np.random.default_rng(100 + seed)
    chains = [random_chain(rng) for _ in range(300)] + [tie_chain()]
    b = vol_surface_slice_batch([c["spot"] for c in chains], [len(c["strikes"]) for c in chains],
                                np.concatenate([c["strikes"] for c in chains]),
                                np.concatenate([c["call_iv"] for c in chains]),
                                np.concatenate([c["put_iv"] for c in chains]))
    for i, c in enumerate(chains):
        want = vol_surface_slice(c["spot"], c["strikes"], c["call_iv"], c["put_iv"])
        got = b.slice(i)
        for x, y in zip(got[:3], want[:3]):
            assert x.tobytes() == y.tobytes(), i  # bit for bit, NaN included
        assert got.atm_iv == want.atm_iv or (math.isnan(got.atm_iv) and math.isnan(want.atm_iv))
    with pytest.raises(ValueError):
        vol_surface_slice_batch([100.0, 100.0], [1, 0], [1.0], [0.2], [0.2])
    assert vol_surface_slice_batch([], [], [], [], []).atm_iv.size == 0
