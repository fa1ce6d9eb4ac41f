"""The processors' fast decoder accepts nothing the schema models reject, and sends exactly
what they reject to the DLQ with their reason."""
from __future__ import annotations

import copy
import json
import math

import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from deltastream.settings import Settings
from schemas.codec import SchemaError, decode
from stream_processors.decode import (CHAIN, QUOTE, TICK, NotFast, Poison, Source, decode_many,
                                      decode_one)
from tests.processors.harness import market_messages

SETTINGS = Settings(_env_file=None, products=["NIFTY", "AAPL"], feed_strikes_per_side=3, feed_expiries=2,
                    feed_seed=3)
MESSAGES = market_messages(SETTINGS, 3)
TICKS = [orjson.loads(m.value) for m in MESSAGES if m.topic == "market.underlying"]
QUOTES = [orjson.loads(m.value) for m in MESSAGES if m.topic == "market.option_quotes"]
CHAINS = [orjson.loads(m.value) for m in MESSAGES if m.topic == "market.option_chains"]
KINDS = {"tick": TICK, "quote": QUOTE, "chain": CHAIN}


def src(value: bytes, offset: int = 0) -> Source:
    return Source("t", 0, offset, b"k", value)


def schema_accepts(kind, raw: bytes) -> bool:
    try:
        decode(raw, kind.model)
        return True
    except SchemaError:
        return False


def fast_accepts(kind, raw: bytes) -> bool:
    try:
        kind.fast(orjson.loads(raw), src(raw))
        return True
    except (NotFast, orjson.JSONDecodeError, TypeError):
        return False


def test_feed_records_take_the_fast_path_with_the_schema_values():
    for kind, rows in ((TICK, TICKS), (QUOTE, QUOTES), (CHAIN, CHAINS)):
        for row in rows:
            raw = orjson.dumps(row)
            assert fast_accepts(kind, raw)
    chain = decode_one(CHAIN, src(orjson.dumps(CHAINS[0])))
    model = decode(orjson.dumps(CHAINS[0]), CHAIN.model)
    assert chain.strikes.tolist() == model.strikes and chain.spot == model.spot_price
    assert chain.calls.open_interest.tolist() == [q.open_interest for q in model.calls]
    assert [None if math.isnan(v) else v for v in chain.puts.iv.tolist()] == [q.iv for q in model.puts]
    tick = decode_one(TICK, src(orjson.dumps(TICKS[0])))
    t = decode(orjson.dumps(TICKS[0]), TICK.model)
    assert (tick.price, tick.ts, tick.event_id) == (t.price, round(t.timestamp.timestamp() * 1e6), t.event_id)
    quotes, bad = decode_many(QUOTE, [src(orjson.dumps(q), i) for i, q in enumerate(QUOTES)])
    assert not bad and [q.symbol for q in quotes] == [q["symbol"] for q in QUOTES]


ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
    st.text(max_size=12), st.sampled_from(["", "CALL", "PUT", "NIFTY", "2026-11-26", "2026-02-30",
                                           "2026-11-23T04:00:00Z", "2026-11-23 04:00:00", "1e-07",
                                           # `$` matches before a final newline: patterns must fullmatch
                                           "NIFTY\n", "2026-11-26\n", "2026-11-23T04:00:00Z\n"]),
    st.lists(st.integers(), max_size=2), st.just({}),
)


def _mutate(row: dict, data) -> dict:
    row = copy.deepcopy(row)
    target = row
    if "calls" in row and data.draw(st.booleans()):  # a field of a quote inside the chain
        side = data.draw(st.sampled_from(["calls", "puts"]))
        target = row[side][data.draw(st.integers(0, len(row[side]) - 1))]
    field = data.draw(st.sampled_from(sorted(target) + ["extra"]))
    action = data.draw(st.sampled_from(["replace", "delete", "scale"]))
    if action == "delete":
        target.pop(field, None)
    elif action == "scale" and isinstance(target.get(field), (int, float)) and not isinstance(target[field], bool):
        target[field] = target[field] * data.draw(st.sampled_from([-1, 0, 0.5, 1.5, 1e6]))
    else:
        target[field] = data.draw(ODD_VALUES)
    return row


@pytest.mark.parametrize("name", ["tick", "quote", "chain"])
@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_path_never_accepts_what_the_schema_rejects(name, data):
    kind = KINDS[name]
    rows = {"tick": TICKS, "quote": QUOTES, "chain": CHAINS}[name]
    row = _mutate(data.draw(st.sampled_from(rows)), data)
    raw = json.dumps(row).encode()  # stdlib: also writes huge integers and Infinity
    accepted = schema_accepts(kind, raw)
    if fast_accepts(kind, raw):
        assert accepted, row
    result = decode_one(kind, src(raw))
    if accepted and isinstance(result, Poison):  # valid, but beyond what can be processed
        assert result.error_type == "ImplausibleValue", result.reason
    else:
        assert isinstance(result, Poison) == (not accepted)


def test_poison_reasons_are_the_schema_reasons():
    bad_json = decode_one(TICK, src(b'{"product": "NIFTY", "price": 1'))
    assert isinstance(bad_json, Poison) and bad_json.reason.startswith("malformed JSON")
    chain = copy.deepcopy(CHAINS[0])
    chain["calls"][1]["bid"] = chain["calls"][1]["ask"] + 5
    p = decode_one(CHAIN, src(orjson.dumps(chain)))
    assert isinstance(p, Poison) and "bid" in p.reason and p.reason.startswith("option_chain.v1")
    tick = dict(TICKS[0], price=-1.0)
    p = decode_one(TICK, src(orjson.dumps(tick)))
    assert isinstance(p, Poison) and "price" in p.reason
    # one bad quote in a batch: the others still decode
    raws = [src(orjson.dumps(q), i) for i, q in enumerate(QUOTES[:5])]
    raws[2] = src(b"not json", 2)
    good, bad = decode_many(QUOTE, raws)
    assert len(good) == 4 and [b.src.offset for b in bad] == [2]


def test_a_far_future_event_time_is_poison():
    tick = dict(TICKS[0], timestamp="2099-01-01T00:00:00Z")
    p = decode_one(TICK, src(orjson.dumps(tick)))
    assert isinstance(p, Poison) and p.error_type == "ImplausibleValue" and "ahead" in p.reason


def test_legal_but_unusual_forms_are_processed_from_the_canonical_record():
    tick = dict(TICKS[0], timestamp="2026-11-23T09:30:00+05:30", event_id=None)
    t = decode_one(TICK, src(orjson.dumps(tick)))
    assert not isinstance(t, Poison)
    assert t.timestamp == "2026-11-23T04:00:00.000000Z" and t.event_id == f"{tick['product']}:{tick['tick_id']}"


@pytest.mark.parametrize("field", ["strike", "bid", "volume", "open_interest", "iv", "delta", "rho",
                                   "product", "symbol", "timestamp", "event_id"])
@pytest.mark.parametrize("value", [True, None, "1", 1.5, 7, [1], {}, 10**20])
@pytest.mark.parametrize("which", ["all", "first", "later"])
def test_a_field_changed_in_every_quote_or_one_is_judged_like_the_schema(field, value, which):
    """Quotes of one layout are read column-wise (one value type per field for all rows):
    a value of another type in the first row, a later row or all rows is caught."""
    chain = copy.deepcopy(CHAINS[0])
    rows = chain["calls"] + chain["puts"]
    for q in {"all": rows, "first": rows[:1], "later": rows[3:4]}[which]:
        q[field] = value
    raw = json.dumps(chain).encode()  # stdlib: also huge integers
    accepted = schema_accepts(CHAIN, raw)
    assert fast_accepts(CHAIN, raw) <= accepted
    result = decode_one(CHAIN, src(raw))
    assert isinstance(result, Poison) == (not accepted)
    quotes, bad = decode_many(QUOTE, [src(json.dumps(q).encode(), i) for i, q in enumerate(rows)])
    assert {b.src.offset for b in bad} == {i for i, q in enumerate(rows)
                                           if not schema_accepts(QUOTE, json.dumps(q).encode())}
