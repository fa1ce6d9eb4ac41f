"""The wire codec: headers, the fast dict path, and decode errors."""
from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from schemas.codec import (MODELS_BY_SCHEMA, SchemaError, decode, decode_dict, encode, encode_dict,
                           headers, model_for, schema_of)
from schemas.records import ALL_RECORDS, OptionChain, OptionQuote, UnderlyingTick
from tests.schemas.examples import chain, quote


def test_headers_and_registry():
    assert headers("option_chain.v1") == [("ds-schema", b"option_chain.v1"),
                                          ("content-type", b"application/json")]
    assert set(MODELS_BY_SCHEMA) == {m.SCHEMA for m in ALL_RECORDS}
    assert len(MODELS_BY_SCHEMA) == len(ALL_RECORDS) == 10
    with pytest.raises(ValueError, match="unknown schema"):
        headers("option_chain.v9")
    assert schema_of(headers("option_quote.v1")) == "option_quote.v1"
    assert schema_of(None) is None and schema_of([("other", b"x")]) is None
    assert model_for("option_quote.v1") is OptionQuote
    with pytest.raises(SchemaError, match="unknown schema"):
        model_for(None)


@pytest.mark.parametrize("data, match", [
    (b'{"product": "NIFTY", "price": 24000', "malformed JSON"),
    (b"not json", "malformed JSON"),
    (b"", "empty message"),
    (None, "empty message"),
    (b"[1, 2]", "underlying_tick.v1: record: Input should be an object"),
    (b'{"product": "NIFTY", "price": -5, "timestamp": "2026-11-26T03:45:00Z", "tick_id": 1}',
     "underlying_tick.v1: price: Input should be greater than 0"),
    (b'{"product": "NIFTY", "price": 5, "timestamp": "yesterday", "tick_id": 1}', "timestamp"),
    (b'{"product": "NIFTY", "price": 5}', "timestamp: Field required; tick_id: Field required"),
])
def test_decode_rejects_with_a_clear_reason(data, match):
    with pytest.raises(SchemaError, match=match) as info:
        decode(data, UnderlyingTick)
    assert isinstance(info.value, ValueError) and info.value.reason == str(info.value)


def test_decode_reports_cross_field_errors():
    bad = json.loads(encode(quote()))
    bad["bid"] = 95.0
    with pytest.raises(SchemaError, match="option_quote.v1: record: Value error, bid 95.0 is above ask 89.25"):
        decode(json.dumps(bad), OptionQuote)
    bad = json.loads(encode(quote()))
    bad["option_type"] = "STRADDLE"
    with pytest.raises(SchemaError, match="option_type: Input should be 'CALL' or 'PUT'"):
        decode(json.dumps(bad).encode(), OptionQuote)


def test_decode_dict():
    assert decode_dict(b'{"a": 1}') == {"a": 1}
    assert decode_dict(memoryview(b'{"a": 1}')) == {"a": 1}
    for data, match in ((b"{", "malformed JSON"), (b"3", "expected a JSON object"), (b"", "empty")):
        with pytest.raises(SchemaError, match=match):
            decode_dict(data)


def feed_style_quote() -> dict:
    """A quote as the feed builds it: numpy scalars, NaN for unknown IV, a datetime."""
    return {
        "symbol": "NIFTY20261126P24000", "product": "NIFTY", "strike": np.float64(24000.0),
        "expiry": dt.date(2026, 11, 26), "option_type": "PUT", "bid": np.float64(74.1),
        "ask": np.float64(74.8), "last": 74.5, "volume": np.int64(1520), "open_interest": 120455,
        "iv": np.float64("nan"), "delta": np.float64(-0.47), "gamma": np.float32(0.0008),
        "vega": 6.12, "theta": -21.4, "rho": -1.7,
        "timestamp": dt.datetime(2026, 11, 26, 3, 45, 12),  # naive = UTC
        "event_id": "NIFTY20261126P24000:1234",
    }


def test_encode_dict_fast_path_matches_the_schema(validators):
    data = encode_dict(feed_style_quote())
    out = json.loads(data)
    assert out["iv"] is None and out["timestamp"] == "2026-11-26T03:45:12.000000Z"
    assert out["expiry"] == "2026-11-26" and out["volume"] == 1520
    errors = list(validators["option_quote.v1"].iter_errors(out))
    assert not errors, errors[0].message
    decoded = decode(data, OptionQuote)
    assert decoded.iv is None
    assert encode(decoded) == encode(decode(encode(decoded), OptionQuote))


def test_encode_dict_writes_what_encode_writes():
    record = quote(iv=None)
    assert encode_dict(record.model_dump()) == encode(record)
    as_chain = chain()
    assert encode_dict(as_chain.model_dump()) == encode(as_chain)


def test_encode_dict_handles_numpy_arrays_and_inf(validators):
    c = json.loads(encode(chain()))
    c["strikes"] = np.array(c["strikes"])
    c["spot_price"] = np.float64(c["spot_price"])
    c["calls"][0]["iv"] = float("inf")
    out = json.loads(encode_dict(c))
    assert out["calls"][0]["iv"] is None and out["strikes"] == [23950.0, 24000.0, 24050.0]
    assert not list(validators[OptionChain.SCHEMA].iter_errors(out))


def test_encode_dict_rejects_unknown_types():
    with pytest.raises(TypeError):
        encode_dict({"x": object()})
