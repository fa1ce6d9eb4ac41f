"""DeltaStream's quant core: pure numerics, no I/O; reused by the feed, the processors and the analytics."""
from quant.black_scholes import black_scholes_price
from quant.gbm import gbm_paths, gbm_step
from quant.greeks import Greeks, greeks, to_trader_units

__all__ = ["black_scholes_price", "gbm_paths", "gbm_step", "Greeks", "greeks", "to_trader_units"]
