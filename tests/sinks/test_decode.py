"""The sink's fast schema checks (sinks.fastcheck) accept nothing the record models reject,
give the models' times, and the decoder still sends exactly what the models reject to the
DLQ with their reason. No servers: decoding only."""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass

import orjson
import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bench.bench_sinks import small_messages
from deltastream.settings import Settings
from schemas.codec import SchemaError, decode, headers
from schemas.records import ChainAnalytics, EnrichedUnderlying, OptionChain, UnderlyingTick
from schemas.topics import ANALYTICS_CHAIN, ANALYTICS_UNDERLYING, MARKET_OPTION_CHAINS, MARKET_UNDERLYING
from sinks.decode import TopicDecoder
from sinks.fastcheck import CHECKS, NotFast
from tests.processors.harness import market_messages

SETTINGS = Settings(_env_file=None, products=["NIFTY", "AAPL"], feed_strikes_per_side=3, feed_expiries=2,
                    feed_seed=3)
MODELS = {MARKET_UNDERLYING: UnderlyingTick, ANALYTICS_UNDERLYING: EnrichedUnderlying,
          ANALYTICS_CHAIN: ChainAnalytics, MARKET_OPTION_CHAINS: OptionChain}


def _rows() -> dict[str, list[dict]]:
    rows: dict[str, list[dict]] = {t: [] for t in MODELS}
    for topic, _, value, _ in small_messages(SETTINGS, 300):
        rows[topic].append(orjson.loads(value))
    for m in market_messages(SETTINGS, 2):
        if m.topic == MARKET_OPTION_CHAINS:
            rows[MARKET_OPTION_CHAINS].append(orjson.loads(m.value))
    # nulls where the models allow them (the first enriched tick of a session has them anyway)
    rows[ANALYTICS_CHAIN].append({**rows[ANALYTICS_CHAIN][0], "pcr_oi": None, "atm_iv": 0.2, "iv_skew": -0.01})
    return rows


ROWS = _rows()


@dataclass
class Msg:  # the parts of confluent_kafka.Message the decoder reads
    _value: bytes
    _headers: list | None

    def value(self): return self._value
    def headers(self): return self._headers
    def key(self): return b"k"
    def partition(self): return 0
    def offset(self): return 7


def schema_accepts(topic: str, raw: bytes) -> bool:
    try:
        decode(raw, MODELS[topic])
        return True
    except SchemaError:
        return False


def fast_accepts(topic: str, raw: bytes) -> bool:
    try:
        CHECKS[MODELS[topic]](orjson.loads(raw))
        return True
    except (NotFast, orjson.JSONDecodeError):
        return False


def test_the_records_the_pipeline_writes_take_the_fast_path_with_the_models_values():
    for topic, rows in ROWS.items():
        assert rows, topic
        model = MODELS[topic]
        for row in rows:
            data = copy.deepcopy(row)
            times = CHECKS[model](data)
            record = model.model_validate(row)
            assert times == {"timestamp": record.timestamp}, topic
            assert data["event_id"] == record.event_id
    tick = {k: v for k, v in ROWS[MARKET_UNDERLYING][0].items() if k != "event_id"}
    CHECKS[UnderlyingTick](tick)  # a missing event_id is derived as the model derives it
    assert tick["event_id"] == UnderlyingTick.model_validate(ROWS[MARKET_UNDERLYING][0]).event_id


ODD_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(allow_nan=False),
    st.text(max_size=12), st.sampled_from(["", "NIFTY", "NIFTY\n", "nifty", "2026-11-26", "2026-02-30",
                                           "2026-11-26\n", "2026-11-23T04:00:00Z", "2026-11-23T04:00:00Z\n",
                                           "2026-11-23T04:00:00+05:30", "2026-11-23 04:00:00", "x" * 300]),
    st.lists(st.integers(), max_size=2), st.just({}),
)


def _mutate(row: dict, data) -> dict:
    row = copy.deepcopy(row)
    target = row
    if "calls" in row and row["calls"] and data.draw(st.booleans()):  # a quote inside a chain
        side = data.draw(st.sampled_from(["calls", "puts"]))
        target = row[side][data.draw(st.integers(0, len(row[side]) - 1))]
    for _ in range(data.draw(st.integers(1, 2))):
        field = data.draw(st.sampled_from(sorted(target) + ["extra"]))
        action = data.draw(st.sampled_from(["replace", "delete", "scale"]))
        if action == "delete":
            target.pop(field, None)
        elif action == "scale" and isinstance(target.get(field), (int, float)) and not isinstance(target[field], bool):
            target[field] = target[field] * data.draw(st.sampled_from([-1, 0, 0.5, 1.5, 1e6, 1e300]))
        else:
            target[field] = data.draw(ODD_VALUES)
    return row


@pytest.mark.parametrize("topic", sorted(MODELS))
@hsettings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_fast_path_never_accepts_what_the_model_rejects(topic, data):
    row = _mutate(data.draw(st.sampled_from(ROWS[topic])), data)
    raw = json.dumps(row).encode()  # stdlib: also writes huge integers and Infinity
    accepted = schema_accepts(topic, raw)
    if fast_accepts(topic, raw):
        assert accepted, row
    # and the decoder (fast path, then the model) decides as the model does
    decoder = TopicDecoder(topic, f"t.{topic}", validate=True)
    try:
        record = decoder(Msg(raw, headers(MODELS[topic].SCHEMA)))
    except SchemaError:
        assert not accepted or orjson_rejects(raw)
    else:
        assert accepted
        model = decode(raw, MODELS[topic])
        assert record.times == {f: getattr(model, f) for f in decoder.time_fields}
        assert record.event_id == model.event_id


def orjson_rejects(raw: bytes) -> bool:  # e.g. integers beyond 64 bits: poison before validation
    try:
        orjson.loads(raw)
        return False
    except orjson.JSONDecodeError:
        return True


def test_rejected_records_carry_the_models_reason_and_headers_are_checked():
    decoder = TopicDecoder(ANALYTICS_UNDERLYING, "t.analytics.underlying", validate=True)
    bad = {**ROWS[ANALYTICS_UNDERLYING][1], "day_low": 10**9}  # above day_high
    with pytest.raises(SchemaError) as exc:
        decoder(Msg(orjson.dumps(bad), headers(EnrichedUnderlying.SCHEMA)))
    assert exc.value.reason.startswith("enriched_underlying.v1:") and "day_low" in exc.value.reason
    good = orjson.dumps(ROWS[ANALYTICS_UNDERLYING][1])
    assert decoder(Msg(good, None)).event_id == ROWS[ANALYTICS_UNDERLYING][1]["event_id"]
    for wrong in (headers(UnderlyingTick.SCHEMA), [("content-type", b"x")] + headers(UnderlyingTick.SCHEMA)):
        with pytest.raises(SchemaError, match="ds-schema"):
            decoder(Msg(good, wrong))
    # ds-schema not first, but the right one: accepted
    assert decoder(Msg(good, [("content-type", b"x")] + headers(EnrichedUnderlying.SCHEMA))).offset == 7
