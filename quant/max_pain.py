"""Max pain: the settlement strike that minimises the total payout to option holders.

    payout(X) = sum_i call_oi_i * max(0, X - K_i) + put_oi_i * max(0, K_i - X)

evaluated at each listed strike X = K_j; ties go to the LOWEST strike.

Because open interest is non-negative, payout(X) is convex and piecewise linear in X, with
slope between consecutive sorted strikes K_j < K_{j+1}

    slope_j = (call OI at or below K_j) - (put OI above K_j),

which never decreases in j. So the minimum is at the first strike whose right-hand slope is
>= 0 (a zero slope is a tie, and the lower strike wins). That needs two cumulative sums of
open interest and no products K * OI - O(S) for sorted strikes (O(S log S) otherwise), and
for integer OI it is exact: no rounding can flip a near tie.

NaN open interest counts as 0; negative open interest raises ValueError. An empty chain
gives NaN.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from quant.black_scholes import FloatArray


def _as_vectors(strikes: ArrayLike, call_oi: ArrayLike, put_oi: ArrayLike
                ) -> tuple[FloatArray, FloatArray, FloatArray]:
    K = np.asarray(strikes, dtype=np.float64).ravel()
    C = np.asarray(call_oi, dtype=np.float64).ravel()
    P = np.asarray(put_oi, dtype=np.float64).ravel()
    if not K.size == C.size == P.size:
        raise ValueError("strikes, call_oi and put_oi must have the same length")
    if K.size:
        if np.isnan(C).any():
            C = np.where(np.isnan(C), 0.0, C)
        if np.isnan(P).any():
            P = np.where(np.isnan(P), 0.0, P)
        if C.min() < 0 or P.min() < 0:
            raise ValueError("open interest must be non-negative")
        if not np.isfinite(K).all():
            raise ValueError("strikes must be finite")
    return K, C, P


def _is_sorted(K: FloatArray) -> bool:
    return K.size < 2 or not bool(np.any(K[1:] < K[:-1]))


def _prepare(strikes: ArrayLike, call_oi: ArrayLike, put_oi: ArrayLike
             ) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Validated vectors, sorted by strike."""
    K, C, P = _as_vectors(strikes, call_oi, put_oi)
    if not _is_sorted(K):
        order = np.argsort(K)  # equal strikes are interchangeable: no need for a stable sort
        K, C, P = K[order], C[order], P[order]
    return K, C, P


def max_pain(strikes: ArrayLike, call_oi: ArrayLike, put_oi: ArrayLike) -> float:
    """The max-pain strike (lowest among ties); NaN for an empty chain.

    slope_j >= 0  <=>  (call OI <= K_j) + (put OI <= K_j) >= total put OI, so one cumulative
    sum of call + put OI in strike order finds it; the last strike always qualifies.
    """
    K, C, P = _as_vectors(strikes, call_oi, put_oi)
    if K.size == 0:
        return float("nan")
    W = C + P
    if not _is_sorted(K):
        order = np.argsort(K)
        K, W = K[order], W[order]
    rising = np.cumsum(W) >= P.sum()
    j = int(np.argmax(rising)) if rising.any() else K.size - 1  # all False: only by rounding
    return float(K[j])


def max_pain_payouts(strikes: ArrayLike, call_oi: ArrayLike, put_oi: ArrayLike
                     ) -> tuple[FloatArray, FloatArray]:
    """(sorted strikes, total payout at each) - the "pain curve", in O(S log S).

    Built from the payout at the lowest strike plus the cumulative slope, which avoids the
    cancellation of prefix sums of K * OI.
    """
    K, C, P = _prepare(strikes, call_oi, put_oi)
    if K.size == 0:
        return K, K.copy()
    first = float(np.dot(P, K - K[0]))              # calls pay nothing at the lowest strike
    slope = np.cumsum(C)[:-1] - (P.sum() - np.cumsum(P)[:-1])
    payouts = np.empty_like(K)
    payouts[0] = first
    np.cumsum(np.diff(K) * slope, out=payouts[1:])
    payouts[1:] += first
    return K, payouts


def max_pain_bruteforce(strikes: ArrayLike, call_oi: ArrayLike, put_oi: ArrayLike) -> float:
    """O(S^2) reference: evaluate the payout at every strike directly (tests only)."""
    K = np.asarray(strikes, dtype=np.float64).ravel()
    if K.size == 0:
        return float("nan")
    C = np.nan_to_num(np.asarray(call_oi, dtype=np.float64).ravel(), nan=0.0)
    P = np.nan_to_num(np.asarray(put_oi, dtype=np.float64).ravel(), nan=0.0)
    settle = K[:, None]
    payout = (C[None, :] * np.maximum(settle - K[None, :], 0.0)).sum(axis=1) \
        + (P[None, :] * np.maximum(K[None, :] - settle, 0.0)).sum(axis=1)
    best = payout.min()
    return float(K[payout == best].min())
