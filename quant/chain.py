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
