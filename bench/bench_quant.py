"""Quant core throughput on one core: pricing + Greeks, implied vol, max pain, OHLC.

    python -m bench.bench_quant [--n 1000000] [--repeat 5]

Prints a table of figures next to their targets; never asserts (timings depend on the box).
"""
from __future__ import annotations

import os

# One core: pin BLAS/OpenMP pools before numpy is imported (the kernels are single-threaded
# ufuncs anyway), and the process itself where the OS allows it.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from typing import Callable  # noqa: E402

import numpy as np  # noqa: E402

from quant import (black_scholes_price, chain_analytics, chain_analytics_batch,  # noqa: E402
                   greeks, implied_volatility, iv_recoverable, max_pain, max_pain_bruteforce,
                   ohlc_bars)


def pin_one_core() -> str:
    try:
        cpu = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {cpu})
        return f"pinned to CPU {cpu}"
    except (AttributeError, OSError):
        return "not pinned (no sched_setaffinity)"


def best_and_median(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times), statistics.median(times)


# --- scalar reference: what a per-option Python loop costs -----------------------------

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def scalar_greeks(is_call: bool, S: float, K: float, t: float, r: float, sigma: float, q: float):
    sqrt_t = math.sqrt(t)
    vst = sigma * sqrt_t
    d1 = (math.log(S / K) + (r - q) * t) / vst + 0.5 * vst
    d2 = d1 - vst
    sign = 1.0 if is_call else -1.0
    nd1 = 0.5 * (1.0 + math.erf(sign * d1 / _SQRT2))
    nd2 = 0.5 * (1.0 + math.erf(sign * d2 / _SQRT2))
    pdf = _INV_SQRT_2PI * math.exp(-0.5 * d1 * d1)
    s_dfq, k_dfr = S * math.exp(-q * t), K * math.exp(-r * t)
    price = sign * (s_dfq * nd1 - k_dfr * nd2)
    delta = sign * math.exp(-q * t) * nd1
    gamma = s_dfq * pdf / (S * S * vst)
    vega = s_dfq * pdf * sqrt_t
    theta = -0.5 * s_dfq * pdf * sigma / sqrt_t + sign * (q * s_dfq * nd1 - r * k_dfr * nd2)
    rho = sign * k_dfr * t * nd2
    return price, delta, gamma, vega, theta, rho


# --- the benchmarks -----------------------------------------------------------------------

def random_options(n: int, seed: int = 1):
    """Moneyness 0.5-2, expiry 1 day-2 years, vol 5%-200% (log-uniform), both flags."""
    rng = np.random.default_rng(seed)
    S = 100.0
    K = S * np.exp(rng.uniform(math.log(0.5), math.log(2.0), n))
    t = np.exp(rng.uniform(math.log(1 / 365), math.log(2.0), n))
    sigma = np.exp(rng.uniform(math.log(0.05), math.log(2.0), n))
    is_call = rng.random(n) < 0.5
    r = rng.uniform(0.0, 0.1, n)
    q = rng.uniform(0.0, 0.05, n)
    return is_call, S, K, t, r, sigma, q


def bench_pricing(n: int, repeat: int, rows: list) -> None:
    is_call, S, K, t, r, sigma, q = random_options(n)
    greeks(is_call, S, K, 0.5, 0.03, sigma, 0.01)  # warm up (first-touch pages, caches)
    best, med = best_and_median(lambda: greeks(is_call, S, K, 0.5, 0.03, sigma, 0.01), repeat)
    rows.append(("price + 5 Greeks, vectorised (chain: shared S,t,r,q)", f"{n / med / 1e6:.1f} M/s",
                 f"best {n / best / 1e6:.1f} M/s", ">= 10 M/s", n / med >= 10e6))
    best, med = best_and_median(lambda: greeks(is_call, np.full(n, S), K, t, r, sigma, q), repeat)
    rows.append(("price + 5 Greeks, vectorised (every input an array)", f"{n / med / 1e6:.1f} M/s",
                 f"best {n / best / 1e6:.1f} M/s", ">= 10 M/s", n / med >= 10e6))
    best, med = best_and_median(lambda: black_scholes_price(is_call, S, K, 0.5, 0.03, sigma, 0.01), repeat)
    rows.append(("price only, vectorised (chain)", f"{n / med / 1e6:.1f} M/s",
                 f"best {n / best / 1e6:.1f} M/s", "", None))
    m = min(n, 50_000)
    args = list(zip(is_call[:m].tolist(), K[:m].tolist(), sigma[:m].tolist()))
    t0 = time.perf_counter()
    ref = [scalar_greeks(c, S, k, 0.5, 0.03, s, 0.01) for c, k, s in args]
    dt = time.perf_counter() - t0
    vec = greeks(is_call[:m], S, K[:m], 0.5, 0.03, sigma[:m], 0.01)
    diff = max(float(np.max(np.abs(np.array([x[0] for x in ref]) - vec.price))), 0.0)
    rows.append((f"scalar Python loop, math.erf (n={m:,})", f"{m / dt / 1e6:.2f} M/s",
                 f"x{(n / med) / (m / dt):.0f} slower; |dprice| <= {diff:.1e}", "", None))


def bench_iv(n: int, repeat: int, rows: list) -> None:
    is_call, S, K, t, r, sigma, q = random_options(n, seed=2)
    price = black_scholes_price(is_call, S, K, t, r, sigma, q)
    recoverable = iv_recoverable(is_call, S, K, t, r, sigma, q)
    # the speed figure on the recoverable part (what a market feed hands the solver) ...
    idx = np.flatnonzero(recoverable)
    args = (price[idx], is_call[idx], S, K[idx], t[idx], r[idx], q[idx])
    implied_volatility(*(a[:1000] if np.ndim(a) else a for a in args))  # warm up
    iv = None
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        iv = implied_volatility(*args)
        times.append(time.perf_counter() - t0)
    med, best = statistics.median(times), min(times)
    err = np.abs(iv - sigma[idx])
    n_fail = int(np.sum(np.isnan(iv)))
    max_err = float(np.nanmax(err))
    rows.append((f"IV solves, recoverable grid (n={idx.size:,})", f"{idx.size / med / 1e6:.2f} M/s",
                 f"best {idx.size / best / 1e6:.2f} M/s", ">= 1 M/s", idx.size / med >= 1e6))
    rows.append(("IV max |sigma - true| on that grid", f"{max_err:.1e}", f"{n_fail} NaN", "<= 1e-10",
                 max_err <= 1e-10 and n_fail == 0))
    # ... and on the whole grid, where unrecoverable prices must come back NaN
    t0 = time.perf_counter()
    iv_all = implied_volatility(price, is_call, S, K, t, r, q)
    dt = time.perf_counter() - t0
    wrong = int(np.sum(~np.isnan(iv_all) & (np.abs(iv_all - sigma) > 1e-10)))
    rows.append((f"IV solves, whole grid incl. unrecoverable (n={n:,})", f"{n / dt / 1e6:.2f} M/s",
                 f"{np.isnan(iv_all).mean():.1%} NaN, {wrong} wrong", "NaN, never wrong", wrong == 0))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from py_vollib.black_scholes_merton.implied_volatility import implied_volatility as pv_iv
    m = min(idx.size, 5_000)
    sub = idx[:m]
    flags = np.where(is_call[sub], "c", "p")
    t0 = time.perf_counter()
    pv = np.array([pv_iv(float(price[j]), S, float(K[j]), float(t[j]), float(r[j]), float(q[j]), f)
                   for j, f in zip(sub, flags)])
    dt = time.perf_counter() - t0
    pv_err = float(np.max(np.abs(pv - sigma[sub])))
    rows.append((f"py_vollib implied_volatility, scalar loop (n={m:,})", f"{m / dt / 1e6:.3f} M/s",
                 f"max err {pv_err:.1e}; ours vs it {float(np.max(np.abs(pv - iv[:m]))):.1e}", "", None))


def bench_max_pain(repeat: int, rows: list) -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    strikes = 10_000.0 + 50.0 * np.arange(n)
    calls = rng.integers(0, 10**6, n).astype(float)
    puts = rng.integers(0, 10**6, n).astype(float)
    shuffled = rng.permutation(n)
    s_strikes, s_calls, s_puts = strikes[shuffled], calls[shuffled], puts[shuffled]
    runs = max(200, 200 * repeat)
    # Chain records carry strictly increasing strikes (schema-validated): the target applies
    # to sorted input; shuffled input pays one argsort on top (informational).
    for label, args, target in (("sorted strikes", (strikes, calls, puts), True),
                                ("shuffled strikes (+argsort)", (s_strikes, s_calls, s_puts), False)):
        max_pain(*args)
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            max_pain(*args)
            times.append(time.perf_counter() - t0)
        med = statistics.median(times) * 1e3
        rows.append((f"max pain, 5,000 {label} (median of {runs})", f"{med:.3f} ms", "",
                     "<= 0.2 ms" if target else "", (med <= 0.2) if target else None))
    t0 = time.perf_counter()
    brute = max_pain_bruteforce(strikes, calls, puts)
    dt = (time.perf_counter() - t0) * 1e3
    rows.append(("max pain brute force O(S^2), 5,000 strikes", f"{dt:.1f} ms",
                 "same strike" if brute == max_pain(strikes, calls, puts) else "DIFFERENT", "", None))


def bench_chain_analytics(repeat: int, rows: list) -> None:
    """Chain analytics of 2,000 snapshots of 41 strikes (a processor batch), one call per
    snapshot vs one batch call (what the chain processor does)."""
    rng = np.random.default_rng(5)
    n, k = 2_000, 41
    strikes = np.tile(23_000.0 + 50.0 * np.arange(k), n)
    spot = rng.uniform(23_500.0, 24_500.0, n)
    cols = [rng.integers(0, 50_000, n * k).astype(float) for _ in range(4)]
    cols += [rng.uniform(0.1, 0.4, n * k) for _ in range(2)] + [rng.uniform(0, 900, n * k) for _ in range(2)]
    counts = np.full(n, k)

    def one_by_one() -> None:
        for i in range(n):
            lo = i * k
            chain_analytics(spot[i], strikes[lo:lo + k], *(c[lo:lo + k] for c in cols))

    for label, fn in (("one chain_analytics call per snapshot", one_by_one),
                      ("chain_analytics_batch, one call", lambda: chain_analytics_batch(spot, counts, strikes, *cols)),
                      ("chain_analytics_batch, 40 snapshots per call",
                       lambda: [chain_analytics_batch(spot[i:i + 40], counts[i:i + 40], strikes[i * k:(i + 40) * k],
                                                      *(c[i * k:(i + 40) * k] for c in cols)) for i in range(0, n, 40)])):
        fn()
        best, med = best_and_median(fn, repeat)
        rows.append((f"chain analytics, 2,000 x 41 strikes: {label}", f"{med / n * 1e6:.1f} us/chain",
                     f"best {best / n * 1e6:.1f} us/chain", "", None))


def bench_ohlc(repeat: int, rows: list) -> None:
    rng = np.random.default_rng(4)
    n = 1_000_000
    ts = 1_764_000_000.0 + np.sort(rng.uniform(0, 86_400, n))
    ts[rng.random(n) < 0.01] -= 30.0  # 1% late ticks
    px = 100.0 * np.exp(np.cumsum(rng.normal(0, 1e-4, n)))
    vol = rng.integers(1, 100, n).astype(float)
    best, med = best_and_median(lambda: ohlc_bars(ts, px, vol, 60.0), repeat)
    rows.append(("OHLC 1m bars from 1M ticks (1% late)", f"{n / med / 1e6:.1f} M ticks/s",
                 f"{med * 1e3:.0f} ms", "", None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="options per vectorised run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--pin", action="store_true", help="pin the process to one CPU")
    args = parser.parse_args()
    pinned = pin_one_core() if args.pin else "not pinned"
    rows: list = []
    bench_pricing(args.n, args.repeat, rows)
    bench_iv(args.n, args.repeat, rows)
    bench_max_pain(args.repeat, rows)
    bench_chain_analytics(args.repeat, rows)
    bench_ohlc(args.repeat, rows)
    print(f"\nquant core, one core ({pinned}; OMP/OPENBLAS threads = {os.environ['OMP_NUM_THREADS']}), "
          f"numpy {np.__version__}; grid: K/S 0.5-2, t 1d-2y, vol 5%-200%, both flags")
    print(f"{'figure':<58} {'value':>14}  {'detail':<44} {'target':<18}")
    for name, value, detail, target, ok in rows:
        mark = "" if ok is None else ("ok" if ok else "BELOW TARGET")
        print(f"{name:<58} {value:>14}  {detail:<44} {target:<12} {mark}")


if __name__ == "__main__":
    main()
