"""The record models: round trips, the exported schemas, and what they reject."""
from __future__ import annotations

import datetime as dt
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from schemas.codec import decode, encode
from schemas.records import (ALL_RECORDS, DlqRecord, LogRecord, OhlcBar, OptionChain, OptionQuote,
                             UnderlyingTick, VolSurfaceExpiry, format_strike, iso_z, option_symbol)
from tests.schemas.examples import EXPIRY, T, bar, chain, examples, quote

EXAMPLES = examples()


def test_examples_cover_every_record():
    assert {type(r) for r in EXAMPLES} == set(ALL_RECORDS)


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: r.SCHEMA)
def test_round_trip_and_exported_schema(record, validators):
    data = encode(record)
    errors = list(validators[record.SCHEMA].iter_errors(json.loads(data)))
    assert not errors, errors[0].message
    again = decode(data, type(record))
    assert again == record
    assert encode(again) == data  # stable bytes: re-publishing yields the same message


@pytest.mark.parametrize("record", EXAMPLES, ids=lambda r: r.SCHEMA)
def test_key_and_event_id_are_set(record):
    assert record.key() and record.event_id


def test_keys():
    assert UnderlyingTick(product="SPY", price=600.0, timestamp=T, tick_id=1).key() == "SPY"
    assert quote().key() == "NIFTY20261126C24000"
    assert chain().key() == "NIFTY|2026-11-26"
    assert bar().key() == "NIFTY"
    assert bar(symbol="NIFTY20261126C24000", open=88.0, high=88.0, low=88.0, close=88.0).key() \
        == "NIFTY20261126C24000"


def test_timestamps_are_utc_and_fixed_width():
    naive = UnderlyingTick(product="SPY", price=600.0, timestamp=dt.datetime(2026, 11, 26, 14, 30), tick_id=1)
    ist = dt.timezone(dt.timedelta(hours=5, minutes=30))
    aware = UnderlyingTick(product="SPY", price=600.0, timestamp=dt.datetime(2026, 11, 26, 20, 0, tzinfo=ist),
                           tick_id=1)
    assert naive.timestamp.tzinfo is dt.timezone.utc and aware.timestamp.tzinfo is dt.timezone.utc
    assert json.loads(encode(naive))["timestamp"] == "2026-11-26T14:30:00.000000Z"
    assert json.loads(encode(aware))["timestamp"] == "2026-11-26T14:30:00.000000Z"
    assert json.loads(encode(quote()))["timestamp"] == "2026-11-26T03:45:12.123000Z"
    # A consumer may send any ISO offset; it is normalised to UTC.
    parsed = decode(b'{"product":"SPY","price":600,"timestamp":"2026-11-26T20:00:00+05:30","tick_id":1}',
                    UnderlyingTick)
    assert parsed.timestamp == dt.datetime(2026, 11, 26, 14, 30, tzinfo=dt.timezone.utc)
    assert parsed.event_id == "SPY:1"  # default deterministic id
    assert iso_z(dt.datetime(2026, 1, 2, 3, 4, 5)) == "2026-01-02T03:04:05.000000Z"


def test_option_symbol_and_strike_format():
    assert option_symbol("NIFTY", EXPIRY, "CALL", 24000.0) == "NIFTY20261126C24000"
    assert option_symbol("AAPL", "2026-12-18", "PUT", 232.5) == "AAPL20261218P232.5"
    assert format_strike(24000) == "24000" and format_strike(0.1 + 0.2) == "0.30000000000000004"
    import numpy as np
    assert format_strike(np.float64(172.5)) == "172.5"
    for bad in (0, -5, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            format_strike(bad)
    with pytest.raises(ValueError, match="CALL or PUT"):
        option_symbol("NIFTY", EXPIRY, "C", 24000)


@given(st.floats(min_value=0.01, max_value=1e9, allow_nan=False))
def test_format_strike_round_trips(strike):
    assert float(format_strike(strike)) == strike


def reject(build, *, match: str) -> None:
    with pytest.raises(ValidationError, match=match):
        build()


@pytest.mark.parametrize("overrides, match", [
    (dict(bid=-1.0), "bid"),
    (dict(ask=-0.5, bid=-1.0), "greater than or equal to 0"),
    (dict(bid=90.0, ask=89.0), "bid 90.0 is above ask 89.0"),
    (dict(option_type="C", symbol="NIFTY20261126C24000"), "option_type"),
    (dict(strike=0.0, symbol="NIFTY20261126C0"), "strike"),
    (dict(volume=-3), "volume"),
    (dict(open_interest=1.5), "expected an integer"),
    (dict(volume="100"), "expected an integer, got a string"),
    (dict(iv=-0.2), "iv"),
    (dict(delta=1.2), "delta"),
    (dict(delta=-0.3), "CALL cannot have delta"),
    (dict(gamma=float("nan")), "finite number"),
    (dict(last="88.9"), "valid number"),
    (dict(symbol="NIFTY20261126C24050"), "does not match its fields"),
    (dict(expiry="26-11-2026"), "expiry"),
])
def test_bad_quotes_are_rejected(overrides, match):
    reject(lambda: quote(**overrides), match=match)


def test_nan_iv_becomes_null():
    assert quote(iv=float("nan")).iv is None


def test_bad_ticks_and_bars_are_rejected():
    reject(lambda: UnderlyingTick(product="NIFTY", price=-1.0, timestamp=T, tick_id=1), match="price")
    reject(lambda: UnderlyingTick(product="nifty|x", price=1.0, timestamp=T, tick_id=1), match="product")
    reject(lambda: bar(high=24000.0), match="low <= open, close <= high")
    reject(lambda: bar(low=24015.0), match="low <= open, close <= high")
    reject(lambda: bar(interval="2m"), match="interval")
    reject(lambda: bar(num_ticks=0), match="num_ticks")
    reject(lambda: bar(final="yes"), match="final")
    reject(lambda: bar(start_time=T, end_time=T + dt.timedelta(minutes=1)), match="boundary")
    reject(lambda: bar(end_time=T), match="start_time \\+ 1m")
    reject(lambda: bar(event_id="random-uuid"), match="one id per window")
    reject(lambda: bar(symbol="BANKNIFTY20261126C52000"), match="not an option on NIFTY")


def test_bar_updates_and_final_share_event_id():
    assert bar().event_id == bar(final=True, close=24019.5).event_id == "NIFTY:1m:2026-11-26T03:45:00Z"


def test_chain_consistency():
    good = chain()
    reject(lambda: OptionChain(**{**good.model_dump(), "strikes": [24050.0, 24000.0, 23950.0]}),
           match="strictly increasing")
    reject(lambda: OptionChain(**{**good.model_dump(), "calls": good.puts}), match="CALL side")
    reject(lambda: OptionChain(**{**good.model_dump(), "strikes": [23950.0, 24000.0]}),
           match="strike not listed")
    sparse = OptionChain(**{**good.model_dump(), "puts": good.puts[:1]})  # gaps are allowed
    assert len(sparse.puts) == 1


def test_surface_lengths_must_match():
    reject(lambda: VolSurfaceExpiry(expiry=EXPIRY, days_to_expiry=1.0, strikes=[1.0, 2.0],
                                    moneyness=[0.5], ivs=[0.2, 0.2], atm_iv=0.2), match="same length")


def test_dlq_record_keeps_original_bytes_and_deterministic_id():
    raw = b"\x00\xffnot json"
    rec = DlqRecord.from_message(topic="market.underlying", partition=1, offset=7, key=b"\xff",
                                 value=raw, reason="bad", error_type="SchemaError", service="proc", timestamp=T)
    assert rec.value_bytes() == raw and rec.source_key == "\\xff"
    assert rec.event_id == "proc:market.underlying:1:7"
    assert json.loads(encode(rec))["key"] == "\\xff"
    reject(lambda: DlqRecord(**{**rec.model_dump(), "value_b64": "not base64!"}), match="base64")
    reject(lambda: DlqRecord(**{**rec.model_dump(), "event_id": "other"}), match="event_id")


def test_log_record_normalises_level_and_extra():
    rec = LogRecord(timestamp=T, service="api", level="warn", logger="x", message="m",
                    extra={"when": T, "obj": object(), 1: "int key"})
    assert rec.level == "WARNING"
    assert rec.extra["when"] == "2026-11-26T03:45:12.123000+00:00" and rec.extra["1"] == "int key"
    assert rec.event_id == LogRecord(timestamp=T, service="api", level="WARNING", logger="x",
                                     message="m").event_id  # deterministic
    reject(lambda: LogRecord(timestamp=T, service="api", level="LOUD", logger="x", message="m"),
           match="level")


def test_unknown_fields_are_ignored_for_forward_compatibility():
    data = b'{"product":"SPY","price":600.5,"timestamp":"2026-11-26T14:30:00Z","tick_id":9,' \
           b'"event_id":"SPY:9","venue":"ARCA"}'
    assert decode(data, UnderlyingTick).price == 600.5


def test_records_are_immutable():
    with pytest.raises(ValidationError):
        quote().bid = 1.0  # type: ignore[misc]
