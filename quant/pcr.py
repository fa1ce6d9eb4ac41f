"""Put/call ratios of a chain.

    pcr = sum(put side) / sum(call side)

NaN entries are ignored (nansum). When the call total is 0 - no calls, all zero or all NaN -
the ratio is undefined and the result is NaN (never inf or a made-up 0); records publish
it as null (the schemas map NaN to null).
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def put_call_ratio(call_values: ArrayLike, put_values: ArrayLike) -> float:
    """sum(put_values) / sum(call_values), NaN when the call total is 0."""
    calls = float(np.nansum(np.asarray(call_values, dtype=np.float64)))
    puts = float(np.nansum(np.asarray(put_values, dtype=np.float64)))
    return puts / calls if calls != 0.0 else float("nan")


def pcr_oi(call_oi: ArrayLike, put_oi: ArrayLike) -> float:
    """Put/call ratio of open interest (NaN when total call OI is 0)."""
    return put_call_ratio(call_oi, put_oi)


def pcr_volume(call_volume: ArrayLike, put_volume: ArrayLike) -> float:
    """Put/call ratio of traded volume (NaN when total call volume is 0)."""
    return put_call_ratio(call_volume, put_volume)
