"""Chain analytics and the volatility-surface slice."""
from __future__ import annotations

import math

import numpy as np
import pytest

from quant import chain_analytics, max_pain, nearest_index, vol_surface_slice

STRIKES = np.array([90.0, 95.0, 100.0, 105.0, 110.0])
CHAIN = dict(
    call_oi=[100, 200, 300, 400, 500], put_oi=[600, 500, 400, 300, 200],
    call_volume=[10, 20, 30, 40, 50], put_volume=[5, 5, 5, 5, 5],
    call_iv=[0.30, 0.26, 0.22, 0.20, 0.19], put_iv=[0.32, 0.28, 0.24, 0.21, 0.20],
    call_price=[11.0, 7.0, 4.0, 2.0, 1.0], put_price=[1.0, 2.0, 3.5, 6.0, 10.0],
)


def test_chain_analytics_known_values():
    m = chain_analytics(101.0, STRIKES, **CHAIN)
    assert m.pcr_oi == 2000 / 1500
    assert m.pcr_volume == 25 / 150
    assert m.atm_strike == 100.0
    assert m.atm_iv == pytest.approx(0.23)
    assert m.atm_straddle_price == 7.5
    assert m.max_pain_strike == max_pain(STRIKES, CHAIN["call_oi"], CHAIN["put_oi"])
    assert (m.total_call_oi, m.total_put_oi) == (1500, 2000)
    assert m.call_buildup_otm == 400 + 500        # strikes > 101
    assert m.put_buildup_otm == 600 + 500 + 400   # strikes < 101
    # put IV at the strike nearest 95.95 (95) minus call IV at the strike nearest 106.05 (105)
    assert m.iv_skew == pytest.approx(0.28 - 0.20)
    assert isinstance(m.total_call_oi, int) and set(m.as_dict()) >= {"pcr_oi", "iv_skew"}


def test_chain_analytics_with_previous_open_interest_reports_the_change():
    prev_c = [100, 200, 300, 350, 520]
    prev_p = [550, np.nan, 400, 300, 200]
    m = chain_analytics(101.0, STRIKES, **CHAIN, prev_call_oi=prev_c, prev_put_oi=prev_p)
    assert m.call_buildup_otm == (400 - 350) + (500 - 520)
    assert m.put_buildup_otm == (600 - 550) + 0 + (400 - 400)  # NaN previous: no change counted


def test_chain_analytics_is_order_independent_and_handles_unknowns():
    perm = np.array([3, 0, 4, 2, 1])
    shuffled = {k: np.asarray(v, dtype=float)[perm] for k, v in CHAIN.items()}
    assert chain_analytics(101.0, STRIKES[perm], **shuffled) == chain_analytics(101.0, STRIKES, **CHAIN)

    unknown = dict(CHAIN, call_iv=[np.nan] * 5, call_oi=[0] * 5, call_volume=[0] * 5)
    m = chain_analytics(101.0, STRIKES, **unknown)
    assert math.isnan(m.pcr_oi) and math.isnan(m.pcr_volume) and math.isnan(m.iv_skew)
    assert m.atm_iv == 0.24          # the put side alone
    assert m.total_call_oi == 0
    with pytest.raises(ValueError):
        chain_analytics(101.0, [], [], [], [], [], [], [], [], [])
    with pytest.raises(ValueError):
        chain_analytics(101.0, STRIKES, **dict(CHAIN, put_iv=[0.2]))


def test_atm_ties_go_to_the_lower_strike():
    assert chain_analytics(102.5, STRIKES, **CHAIN).atm_strike == 100.0
    assert nearest_index(STRIKES, 102.5) == 2
    assert nearest_index(STRIKES, 102.6) == 3
    assert nearest_index(STRIKES, 10.0) == 0 and nearest_index(STRIKES, 1e6) == 4


def test_vol_surface_slice_uses_the_otm_side():
    s = vol_surface_slice(100.0, STRIKES[::-1], CHAIN["call_iv"][::-1], CHAIN["put_iv"][::-1])
    np.testing.assert_array_equal(s.strikes, STRIKES)
    np.testing.assert_allclose(s.moneyness, STRIKES / 100.0)
    np.testing.assert_array_equal(s.ivs, [0.32, 0.28, 0.22, 0.20, 0.19])  # puts below, calls at/above
    assert s.atm_iv == pytest.approx(0.23)
