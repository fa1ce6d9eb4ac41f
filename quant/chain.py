"""Whole-chain analytics for one (product, expiry) snapshot: the numbers of the
chain-analytics record, and one expiry's slice of the volatility surface.

Inputs are per-strike arrays aligned with `strikes` (any order; NaN = unknown). IVs are
annualised decimals (0.15 = 15%). Definitions (the record's field names):

* pcr_oi, pcr_volume: put/call ratios, NaN when the call total is 0 (see `quant.pcr`).
* atm_strike: the strike nearest spot, ties -> the lower strike.
* atm_iv: mean of call and put IV at the ATM strike, ignoring a NaN side (NaN if both are).
* atm_straddle_price: call + put price at the ATM strike (NaN if either is NaN).
* max_pain_strike: see `quant.max_pain`.
* total_call_oi, total_put_oi: sums of open interest (NaN counts as 0), as ints.
* call_buildup_otm: OTM calls are strikes > spot. Without `prev_call_oi` it is their total
  open interest; with it (aligned with `strikes`), the change of their open interest since
  that snapshot (can be negative; a NaN previous value contributes no change).
* put_buildup_otm: the same for OTM puts, strikes < spot.
* iv_skew: put IV at the strike nearest 0.95 * spot minus call IV at the strike nearest
  1.05 * spot (both OTM, equally far from spot in percent); positive = puts richer.
  NaN if either IV is unknown.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import ArrayLike

from quant.black_scholes import FloatArray
from quant.max_pain import max_pain
from quant.pcr import put_call_ratio

SKEW_OTM_DISTANCE = 0.05


@dataclass(frozen=True)
class ChainMetrics:
    """The analytics of one chain snapshot; field names match the chain-analytics record."""

    pcr_oi: float
    pcr_volume: float
    atm_strike: float
    atm_iv: float
    atm_straddle_price: float
    max_pain_strike: float
    total_call_oi: int
    total_put_oi: int
    call_buildup_otm: int
    put_buildup_otm: int
    iv_skew: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class VolSlice(NamedTuple):
    """One expiry's smile, sorted by strike: moneyness = K / spot, ivs from the OTM side."""

    strikes: FloatArray
    moneyness: FloatArray
    ivs: FloatArray
    atm_iv: float


def _arrays(n: int, **named: ArrayLike | None) -> dict[str, FloatArray]:
    out = {}
    for name, value in named.items():
        if value is None:
            continue
        arr = np.asarray(value, dtype=np.float64).ravel()
        if arr.size != n:
            raise ValueError(f"{name} has {arr.size} entries for {n} strikes")
        out[name] = arr
    return out


def nearest_index(sorted_strikes: FloatArray, target: float) -> int:
    """Index of the strike nearest `target` in an ascending array; ties -> the lower strike."""
    i = int(np.searchsorted(sorted_strikes, target))
    if i == 0:
        return 0
    if i == sorted_strikes.size:
        return i - 1
    return i - 1 if target - sorted_strikes[i - 1] <= sorted_strikes[i] - target else i


def _mean_ignoring_nan(a: float, b: float) -> float:
    vals = [v for v in (a, b) if v == v]
    return sum(vals) / len(vals) if vals else float("nan")


def _sorted(spot: float, strikes: ArrayLike) -> tuple[FloatArray, np.ndarray]:
    K = np.asarray(strikes, dtype=np.float64).ravel()
    if K.size == 0:
        raise ValueError("empty chain")
    if not (np.isfinite(spot) and spot > 0):
        raise ValueError("spot must be positive")
    order = np.argsort(K, kind="stable")
    return K[order], order


def chain_analytics(spot: float, strikes: ArrayLike, call_oi: ArrayLike, put_oi: ArrayLike,
                    call_volume: ArrayLike, put_volume: ArrayLike, call_iv: ArrayLike,
                    put_iv: ArrayLike, call_price: ArrayLike, put_price: ArrayLike,
                    prev_call_oi: ArrayLike | None = None,
                    prev_put_oi: ArrayLike | None = None) -> ChainMetrics:
    """The chain-analytics numbers of one snapshot (definitions in the module docstring)."""
    K, order = _sorted(spot, strikes)
    a = {name: arr[order] for name, arr in _arrays(
        K.size, call_oi=call_oi, put_oi=put_oi, call_volume=call_volume, put_volume=put_volume,
        call_iv=call_iv, put_iv=put_iv, call_price=call_price, put_price=put_price,
        prev_call_oi=prev_call_oi, prev_put_oi=prev_put_oi).items()}
    c_oi = np.nan_to_num(a["call_oi"], nan=0.0)
    p_oi = np.nan_to_num(a["put_oi"], nan=0.0)

    atm = nearest_index(K, spot)
    otm_calls = K > spot
    otm_puts = K < spot
    if "prev_call_oi" in a:
        call_buildup = np.nansum((c_oi - a["prev_call_oi"])[otm_calls])
    else:
        call_buildup = c_oi[otm_calls].sum()
    if "prev_put_oi" in a:
        put_buildup = np.nansum((p_oi - a["prev_put_oi"])[otm_puts])
    else:
        put_buildup = p_oi[otm_puts].sum()

    put_wing = nearest_index(K, spot * (1.0 - SKEW_OTM_DISTANCE))
    call_wing = nearest_index(K, spot * (1.0 + SKEW_OTM_DISTANCE))
    return ChainMetrics(
        pcr_oi=put_call_ratio(c_oi, p_oi),
        pcr_volume=put_call_ratio(a["call_volume"], a["put_volume"]),
        atm_strike=float(K[atm]),
        atm_iv=_mean_ignoring_nan(float(a["call_iv"][atm]), float(a["put_iv"][atm])),
        atm_straddle_price=float(a["call_price"][atm] + a["put_price"][atm]),
        max_pain_strike=max_pain(K, c_oi, p_oi),
        total_call_oi=int(round(c_oi.sum())),
        total_put_oi=int(round(p_oi.sum())),
        call_buildup_otm=int(round(call_buildup)),
        put_buildup_otm=int(round(put_buildup)),
        iv_skew=float(a["put_iv"][put_wing] - a["call_iv"][call_wing]),
    )


def vol_surface_slice(spot: float, strikes: ArrayLike, call_iv: ArrayLike, put_iv: ArrayLike) -> VolSlice:
    """Moneyness K/S and the OTM-side IV per strike (puts below spot, calls at and above),
    sorted by strike, plus the ATM IV as defined for `chain_analytics`."""
    K, order = _sorted(spot, strikes)
    a = _arrays(K.size, call_iv=call_iv, put_iv=put_iv)
    c_iv, p_iv = a["call_iv"][order], a["put_iv"][order]
    atm = nearest_index(K, spot)
    return VolSlice(
        strikes=K,
        moneyness=K / spot,
        ivs=np.where(K < spot, p_iv, c_iv),
        atm_iv=_mean_ignoring_nan(float(c_iv[atm]), float(p_iv[atm])),
    )


# --- many snapshots at once -----------------------------------------------------------------
#
# A stream processor gets ~100 snapshots of a chain per batch, of ~40 strikes each. At that
# size `chain_analytics` is ~40 small numpy calls whose fixed cost (~1-2 µs each) is all
# of its time; the batch form below does the same arithmetic as one call per step over a
# (chains x strikes) matrix, padded to the longest chain. Padding is chosen so it never
# contributes: open interest 0 (sums, cumulative sums), strike +inf (never below spot, never
# nearest), NaN elsewhere (never read: indices always point inside the chain).
#
# Equality with `chain_analytics`: every per-chain value is computed by the same float
# operations on the same operands, except sums of a row (numpy sums a row of the matrix in
# a different pairwise order than the unpadded 1-d array). For integer-valued open interest
# and volume, as the schemas require, sums are exact in any order, so the results are
# identical; for fractional values they agree to rounding (~1e-16 relative; a max-pain or
# rounding-to-int decision could flip only at an exact tie within that rounding).


@dataclass(frozen=True)
class ChainBatch:
    """`chain_analytics` of many snapshots: one array per ChainMetrics field, entry i for
    chain i (ints as int64 arrays)."""

    pcr_oi: FloatArray
    pcr_volume: FloatArray
    atm_strike: FloatArray
    atm_iv: FloatArray
    atm_straddle_price: FloatArray
    max_pain_strike: FloatArray
    total_call_oi: np.ndarray
    total_put_oi: np.ndarray
    call_buildup_otm: np.ndarray
    put_buildup_otm: np.ndarray
    iv_skew: FloatArray

    def __len__(self) -> int:
        return self.pcr_oi.size

    def metrics(self, i: int) -> ChainMetrics:
        """Chain i as `chain_analytics` returns it."""
        return ChainMetrics(**{name: getattr(self, name)[i].item() for name in _METRIC_FIELDS})

    def columns(self) -> dict[str, list]:
        """Every field as a list of Python floats / ints (one C-level conversion per field)."""
        return {name: getattr(self, name).tolist() for name in _METRIC_FIELDS}


_METRIC_FIELDS = tuple(ChainMetrics.__dataclass_fields__)


def _nearest_rows(K: FloatArray, n_valid: np.ndarray, target: FloatArray) -> np.ndarray:
    """`nearest_index` per row of K (ascending in its first n_valid entries, +inf after):
    the column of the strike nearest target[row], ties -> the lower strike."""
    rows = np.arange(K.shape[0])
    i = np.count_nonzero(K < target[:, None], axis=1)  # = searchsorted(row, target, "left")
    lower = K[rows, np.maximum(i - 1, 0)]
    upper = K[rows, np.minimum(i, n_valid - 1)]
    pick_lower = target - lower <= upper - target
    out = np.where(pick_lower, i - 1, i)
    out = np.where(i == 0, 0, out)
    return np.where(i >= n_valid, n_valid - 1, out)


def _as_ints(x: FloatArray) -> np.ndarray:
    """int(round(v)) per entry, as int64 (Python's round and np.rint both round half to even)."""
    if np.all(np.abs(x) < 2.0 ** 62):
        return np.rint(x).astype(np.int64)
    return np.array([int(round(v)) for v in x.tolist()], dtype=np.int64)  # raises as int() does


def _flat_chains(spot: ArrayLike, counts: ArrayLike,
                 strikes: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """The batch functions' common input: one spot and strike count per chain, flat strikes
    (checked: counts match spots, no empty chain, positive finite spots, strikes add up)."""
    S = np.asarray(spot, dtype=np.float64).ravel()
    n_valid = np.asarray(counts, dtype=np.int64).ravel()
    if n_valid.size != S.size:
        raise ValueError(f"{n_valid.size} counts for {S.size} spots")
    if S.size and n_valid.min() <= 0:
        raise ValueError("empty chain")
    if not (np.isfinite(S).all() and (S > 0).all()):
        raise ValueError("spot must be positive")
    total = int(n_valid.sum())
    K = np.asarray(strikes, dtype=np.float64).ravel()
    if K.size != total:
        raise ValueError(f"strikes has {K.size} entries for {total} strikes")
    return S, n_valid, K, total


def chain_analytics_batch(spot: ArrayLike, counts: ArrayLike, strikes: ArrayLike,
                          call_oi: ArrayLike, put_oi: ArrayLike, call_volume: ArrayLike,
                          put_volume: ArrayLike, call_iv: ArrayLike, put_iv: ArrayLike,
                          call_price: ArrayLike, put_price: ArrayLike,
                          prev_call_oi: ArrayLike | None = None,
                          prev_put_oi: ArrayLike | None = None) -> ChainBatch:
    """`chain_analytics` of n snapshots at once.

    spot and counts have one entry per chain: its spot and its number of strikes. The
    per-strike arguments are flat: the columns of chain 0 (counts[0] entries), then those of
    chain 1, and so on (each chain's strikes in any order). Raises ValueError where
    `chain_analytics` would for any of the chains."""
    S, n_valid, K, total = _flat_chains(spot, counts, strikes)
    n = S.size
    if n == 0:
        e = np.empty(0)
        ei = np.empty(0, dtype=np.int64)
        return ChainBatch(e, e, e, e, e, e, ei, ei, ei, ei, e)
    a = _arrays(total, call_oi=call_oi, put_oi=put_oi, call_volume=call_volume,
                put_volume=put_volume, call_iv=call_iv, put_iv=put_iv, call_price=call_price,
                put_price=put_price, prev_call_oi=prev_call_oi, prev_put_oi=prev_put_oi)

    # positions in the padded (n, L) matrix
    L = int(n_valid.max())
    starts = np.zeros(n, dtype=np.int64)
    np.cumsum(n_valid[:-1], out=starts[1:])
    seg = np.repeat(np.arange(n), n_valid)
    col = np.arange(total) - starts[seg]
    same_chain = seg[1:] == seg[:-1]
    if np.any((K[1:] < K[:-1]) & same_chain) or np.isnan(K).any():
        order = np.lexsort((K, seg))  # stable, by strike within each chain
        K = K[order]
        a = {name: arr[order] for name, arr in a.items()}
    flat = seg * L + col

    def padded(values: FloatArray, fill: float) -> FloatArray:
        out = np.full(n * L, fill)
        out[flat] = values
        return out.reshape(n, L)

    c_oi_flat = np.nan_to_num(a["call_oi"], nan=0.0)
    p_oi_flat = np.nan_to_num(a["put_oi"], nan=0.0)
    if not np.isfinite(K).all():
        raise ValueError("strikes must be finite")  # as max_pain
    if (c_oi_flat.min() < 0) or (p_oi_flat.min() < 0):
        raise ValueError("open interest must be non-negative")
    Km = padded(K, np.inf)
    c_oi = padded(c_oi_flat, 0.0)
    p_oi = padded(p_oi_flat, 0.0)
    rows = np.arange(n)

    atm = _nearest_rows(Km, n_valid, S)
    put_wing = _nearest_rows(Km, n_valid, S * (1.0 - SKEW_OTM_DISTANCE))
    call_wing = _nearest_rows(Km, n_valid, S * (1.0 + SKEW_OTM_DISTANCE))
    otm_calls = Km > S[:, None]
    otm_calls[Km == np.inf] = False
    otm_puts = Km < S[:, None]

    if "prev_call_oi" in a:
        change = c_oi - padded(a["prev_call_oi"], np.nan)
        call_buildup = np.nansum(np.where(otm_calls, change, np.nan), axis=1)
    else:
        call_buildup = np.where(otm_calls, c_oi, 0.0).sum(axis=1)
    if "prev_put_oi" in a:
        change = p_oi - padded(a["prev_put_oi"], np.nan)
        put_buildup = np.nansum(np.where(otm_puts, change, np.nan), axis=1)
    else:
        put_buildup = np.where(otm_puts, p_oi, 0.0).sum(axis=1)

    total_c = c_oi.sum(axis=1)
    total_p = p_oi.sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        pcr_oi = np.where(total_c != 0.0, total_p / total_c, np.nan)
        vol_c = np.nansum(padded(a["call_volume"], 0.0), axis=1)
        vol_p = np.nansum(padded(a["put_volume"], 0.0), axis=1)
        pcr_volume = np.where(vol_c != 0.0, vol_p / vol_c, np.nan)

    # max pain (quant.max_pain): the first strike where cumulative call + put OI reaches the
    # total put OI; the last strike if none does (possible only by rounding)
    rising = np.cumsum(c_oi + p_oi, axis=1) >= total_p[:, None]
    rising &= np.arange(L) < n_valid[:, None]
    pain = np.where(rising.any(axis=1), np.argmax(rising, axis=1), n_valid - 1)

    def at(values: FloatArray, idx: np.ndarray) -> FloatArray:
        return values[starts + idx]  # flat (sorted) column of chain i at its index idx[i]

    c_iv_atm, p_iv_atm = at(a["call_iv"], atm), at(a["put_iv"], atm)
    atm_iv = np.where(np.isnan(c_iv_atm), p_iv_atm,
                      np.where(np.isnan(p_iv_atm), c_iv_atm, (c_iv_atm + p_iv_atm) / 2))
    return ChainBatch(
        pcr_oi=pcr_oi,
        pcr_volume=pcr_volume,
        atm_strike=Km[rows, atm],
        atm_iv=atm_iv,
        atm_straddle_price=at(a["call_price"], atm) + at(a["put_price"], atm),
        max_pain_strike=Km[rows, pain],
        total_call_oi=_as_ints(total_c),
        total_put_oi=_as_ints(total_p),
        call_buildup_otm=_as_ints(call_buildup),
        put_buildup_otm=_as_ints(put_buildup),
        iv_skew=at(a["put_iv"], put_wing) - at(a["call_iv"], call_wing),
    )


@dataclass(frozen=True)
class SliceBatch:
    """`vol_surface_slice` of many snapshots: flat per-strike arrays, chain after chain
    (chain i is [starts[i], starts[i] + counts[i])), and one atm_iv per chain."""

    strikes: FloatArray
    moneyness: FloatArray
    ivs: FloatArray
    atm_iv: FloatArray
    starts: np.ndarray
    counts: np.ndarray

    def slice(self, i: int) -> VolSlice:
        """Chain i as `vol_surface_slice` returns it."""
        lo, hi = int(self.starts[i]), int(self.starts[i] + self.counts[i])
        return VolSlice(self.strikes[lo:hi], self.moneyness[lo:hi], self.ivs[lo:hi],
                        float(self.atm_iv[i]))


def vol_surface_slice_batch(spot: ArrayLike, counts: ArrayLike, strikes: ArrayLike,
                            call_iv: ArrayLike, put_iv: ArrayLike) -> SliceBatch:
    """`vol_surface_slice` of n snapshots at once; arguments laid out as for
    `chain_analytics_batch` (flat per-strike columns, `counts` strikes per chain)."""
    S, n_valid, K, total = _flat_chains(spot, counts, strikes)
    a = _arrays(total, call_iv=call_iv, put_iv=put_iv)
    c_iv, p_iv = a["call_iv"], a["put_iv"]
    starts = np.zeros(S.size, dtype=np.int64)
    np.cumsum(n_valid[:-1], out=starts[1:])
    seg = np.repeat(np.arange(S.size), n_valid)
    if np.any((K[1:] < K[:-1]) & (seg[1:] == seg[:-1])) or np.isnan(K).any():
        order = np.lexsort((K, seg))  # stable, by strike within each chain (as _sorted)
        K, c_iv, p_iv = K[order], c_iv[order], p_iv[order]
    spot_of = S[seg]
    if S.size:
        # nearest_index per chain: i = strikes below spot (searchsorted, "left")
        below = np.add.reduceat((K < spot_of).astype(np.int64), starts)
        lower = K[starts + np.maximum(below - 1, 0)]
        upper = K[starts + np.minimum(below, n_valid - 1)]
        atm = np.where(S - lower <= upper - S, below - 1, below)
        atm = np.where(below == 0, 0, np.where(below >= n_valid, n_valid - 1, atm))
        c_atm, p_atm = c_iv[starts + atm], p_iv[starts + atm]
        atm_iv = np.where(np.isnan(c_atm), p_atm, np.where(np.isnan(p_atm), c_atm, (c_atm + p_atm) / 2))
    else:
        atm_iv = np.empty(0)
    return SliceBatch(K, K / spot_of, np.where(K < spot_of, p_iv, c_iv), atm_iv, starts, n_valid)
