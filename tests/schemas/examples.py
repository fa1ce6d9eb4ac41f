"""Realistic example records of every type, shared by the schema tests."""
from __future__ import annotations

import datetime as dt

from schemas.records import (ChainAnalytics, DlqRecord, EnrichedUnderlying, LogRecord, NewsItem,
                             OhlcBar, OptionChain, OptionQuote, Record, UnderlyingTick, VolSurface,
                             VolSurfaceExpiry, option_symbol)

T = dt.datetime(2026, 11, 26, 3, 45, 12, 123000, tzinfo=dt.timezone.utc)  # 09:15:12 IST
EXPIRY = dt.date(2026, 11, 26)
SPOT = 24012.35


def quote(option_type: str = "CALL", strike: float = 24000.0, **overrides) -> OptionQuote:
    call = option_type == "CALL"
    symbol = overrides.get("symbol") or option_symbol("NIFTY", EXPIRY, option_type, strike)
    fields = dict(
        symbol=symbol, product="NIFTY", strike=strike,
        expiry=EXPIRY, option_type=option_type, bid=88.5 if call else 74.1,
        ask=89.25 if call else 74.8, last=88.9 if call else 74.5, volume=152_300,
        open_interest=1_204_550, iv=0.1432, delta=0.53 if call else -0.47, gamma=0.00081,
        vega=6.12, theta=-21.4, rho=1.9 if call else -1.7, timestamp=T,
        event_id=f"{symbol}:1234")
    fields.update(overrides)
    return OptionQuote(**fields)


def chain() -> OptionChain:
    strikes = [23950.0, 24000.0, 24050.0]
    return OptionChain(
        product="NIFTY", expiry=EXPIRY, spot_price=SPOT, strikes=strikes,
        calls=[quote("CALL", k) for k in strikes], puts=[quote("PUT", k) for k in strikes],
        timestamp=T, event_id="NIFTY:2026-11-26:1234")


def bar(final: bool = False, **overrides) -> OhlcBar:
    fields = dict(product="NIFTY", interval="1m", open=24010.0, high=24019.5, low=24001.2,
                  close=24012.35, volume=0, num_ticks=12,
                  start_time=dt.datetime(2026, 11, 26, 3, 45, tzinfo=dt.timezone.utc),
                  end_time=dt.datetime(2026, 11, 26, 3, 46, tzinfo=dt.timezone.utc),
                  final=final, timestamp=T)
    fields.update(overrides)
    return OhlcBar(**fields)


def examples() -> list[Record]:
    """One realistic record of each type (two where a variant matters)."""
    return [
        UnderlyingTick(product="NIFTY", price=SPOT, timestamp=T, tick_id=1234),
        quote("CALL"),
        quote("PUT", 23950.0, iv=None),  # unrecoverable IV is null
        OptionQuote(symbol="AAPL20261218C232.5", product="AAPL", strike=232.5,
                    expiry=dt.date(2026, 12, 18), option_type="CALL", bid=0.0, ask=0.0, last=0.05,
                    volume=0, open_interest=0, iv=None, delta=0.0, gamma=0.0, vega=0.0,
                    theta=0.0, rho=0.0, timestamp=T, event_id="AAPL20261218C232.5:77"),
        chain(),
        ChainAnalytics(product="NIFTY", expiry=EXPIRY, spot_price=SPOT, pcr_oi=0.87,
                       pcr_volume=1.12, atm_strike=24000.0, atm_iv=0.1432,
                       atm_straddle_price=163.4, max_pain_strike=24000.0,
                       total_call_oi=3_613_650, total_put_oi=3_143_876, call_buildup_otm=1_204_550,
                       put_buildup_otm=1_204_550, iv_skew=0.012, timestamp=T,
                       event_id="NIFTY:2026-11-26:1234"),
        ChainAnalytics(product="AAPL", expiry=dt.date(2026, 12, 18), spot_price=231.2, pcr_oi=None,
                       pcr_volume=None, atm_strike=230.0, atm_iv=None, atm_straddle_price=None,
                       max_pain_strike=230.0, total_call_oi=0, total_put_oi=0, call_buildup_otm=0,
                       put_buildup_otm=0, iv_skew=None, timestamp=T, event_id="AAPL:2026-12-18:77"),
        bar(),
        bar(final=True),
        bar(symbol="NIFTY20261126C24000", interval="5m", open=88.0, high=90.5, low=87.1,
            close=88.9, volume=1200,
            end_time=dt.datetime(2026, 11, 26, 3, 50, tzinfo=dt.timezone.utc)),
        VolSurface(product="NIFTY", timestamp=T, spot_price=SPOT, expiries=[
            VolSurfaceExpiry(expiry=EXPIRY, days_to_expiry=0.26, strikes=[23950.0, 24000.0, 24050.0],
                             moneyness=[0.9974, 0.9995, 1.0016], ivs=[0.151, 0.1432, None],
                             atm_iv=0.1432),
            VolSurfaceExpiry(expiry=dt.date(2026, 12, 3), days_to_expiry=7.26, strikes=[24000.0],
                             moneyness=[0.9995], ivs=[0.138], atm_iv=0.138),
        ]),
        EnrichedUnderlying(product="NIFTY", price=SPOT, prev_price=24010.0, change=2.35,
                           change_pct=0.0098, day_open=23990.0, day_high=24020.0, day_low=23985.5,
                           timestamp=T, tick_id=1234),
        EnrichedUnderlying(product="SPY", price=601.5, prev_price=None, change=None, change_pct=None,
                           day_open=601.5, day_high=601.5, day_low=601.5, timestamp=T, tick_id=0),
        DlqRecord.from_message(topic="market.option_quotes", partition=4, offset=99_812,
                               key=b"NIFTY20261126C24000", value=b'{"symbol": "NIFTY2026',
                               reason="malformed JSON: EOF while parsing a string",
                               error_type="SchemaError", service="sink-mongo", timestamp=T),
        LogRecord(timestamp=T, service="feed", level="warning", logger="producers.feed.publisher",
                  message="broker problem (retrying)", extra={"error": "timed out", "attempt": 3}),
        NewsItem(product="NIFTY", headline="RBI holds repo rate at 6.5%", body="The MPC voted 5-1.",
                 source="synthetic", timestamp=T),
        NewsItem(headline="US CPI due at 13:30 UTC", source="calendar", timestamp=T),
    ]
