"""DeltaStream's quant core: pure numerics, no I/O; reused by the feed, the processors and the analytics.

Every pricing function takes `(is_call, S, K, t, r, sigma, q)` (py_vollib's order; is_call a
bool array, "c"/"p" strings accepted), broadcasts all arguments and works on whole chains.
Raw Greek units are derivatives (theta per year, vega per unit sigma); `to_trader_units`
gives what records publish. Implied vols are NaN, never a wrong number, where a price does
not determine sigma (see `quant.implied_vol`).
"""
from quant.black_scholes import as_is_call, black_scholes_price
from quant.chain import (ChainBatch, ChainMetrics, SliceBatch, VolSlice, chain_analytics,
                         chain_analytics_batch, nearest_index, vol_surface_slice, vol_surface_slice_batch)
from quant.gbm import gbm_paths, gbm_step
from quant.greeks import Greeks, delta, gamma, greeks, rho, theta, to_trader_units, vega
from quant.implied_vol import implied_volatility, iv_recoverable
from quant.max_pain import max_pain, max_pain_bruteforce, max_pain_payouts
from quant.ohlc import Bar, OhlcBars, bucket_start, ohlc_bars
from quant.pcr import pcr_oi, pcr_volume, put_call_ratio

__all__ = [
    "as_is_call", "black_scholes_price",
    "Greeks", "greeks", "delta", "gamma", "vega", "theta", "rho", "to_trader_units",
    "implied_volatility", "iv_recoverable",
    "gbm_paths", "gbm_step",
    "max_pain", "max_pain_payouts", "max_pain_bruteforce",
    "pcr_oi", "pcr_volume", "put_call_ratio",
    "Bar", "OhlcBars", "bucket_start", "ohlc_bars",
    "ChainMetrics", "VolSlice", "chain_analytics", "vol_surface_slice", "nearest_index",
    "ChainBatch", "chain_analytics_batch", "SliceBatch", "vol_surface_slice_batch",
]
