"""Poison on an input topic goes to deltastream.dlq with its reason and offsets; the sink
goes on (and, consuming the DLQ topic itself, stores the DLQ records in MongoDB)."""
from __future__ import annotations

import base64
import datetime as dt

from confluent_kafka import Producer

from deltastream.clients import mongo_client, producer_config
from schemas.codec import decode, encode, headers
from schemas.records import DlqRecord, UnderlyingTick
from schemas.topics import DELTASTREAM_DLQ, MARKET_UNDERLYING
from sinks.run import run_mongo_sink
from tests.sinks.conftest import SinkThread, T0, read_topics, wait_until


def test_poison_goes_to_the_dlq_with_reason_and_offsets_and_the_sink_goes_on(sink_settings, unique):
    settings = sink_settings
    topic = settings.topic(MARKET_UNDERLYING)
    good = [UnderlyingTick(product="NIFTY", price=24000.0 + i, tick_id=i, timestamp=T0 + dt.timedelta(seconds=i))
            for i in range(2)]
    bad_json = b'{"product": "NIFTY", "price": '
    negative = b'{"product":"NIFTY","price":-1.0,"tick_id":7,"timestamp":"2026-11-23T04:00:07.000000Z"}'
    messages = [  # (value, headers), all into partition 0: offsets 0..4
        (encode(good[0]), headers(UnderlyingTick.SCHEMA)),
        (bad_json, headers(UnderlyingTick.SCHEMA)),
        (negative, headers(UnderlyingTick.SCHEMA)),
        (encode(good[0]), headers("option_quote.v1")),  # valid JSON, wrong schema for the topic
        (encode(good[1]), headers(UnderlyingTick.SCHEMA)),
    ]
    producer = Producer(producer_config(settings))
    for value, hdrs in messages:
        producer.produce(topic, value, b"NIFTY", partition=0, headers=hdrs)
    assert producer.flush(30) == 0

    db = mongo_client(settings)[settings.mongo_db]
    sink = SinkThread(run_mongo_sink, settings, f"dlq-{unique}")
    try:
        wait_until(lambda: db.dlq.count_documents({}) == 3 and db.underlying_ticks.count_documents({}) == 2,
                   60, "the good ticks and the DLQ records in MongoDB")
    finally:
        assert sink.stop() == 0

    assert {d["_id"] for d in db.underlying_ticks.find()} == {t.event_id for t in good}
    dead = [decode(m.value(), DlqRecord) for m in read_topics(settings, [DELTASTREAM_DLQ], 3)]
    assert sorted((d.source_topic, d.partition, d.offset) for d in dead) == [(topic, 0, 1), (topic, 0, 2), (topic, 0, 3)]
    by_offset = {d.offset: d for d in dead}
    assert by_offset[1].reason.startswith("malformed JSON") and by_offset[1].value_bytes() == bad_json
    assert "price" in by_offset[2].reason and by_offset[2].value_bytes() == negative
    assert "ds-schema" in by_offset[3].reason
    assert all(d.service == "sink-mongo" and d.source_key == "NIFTY" for d in dead)
    assert all(d.event_id == f"sink-mongo:{topic}:0:{d.offset}" for d in dead)
    stored = {d["offset"]: d for d in db.dlq.find()}
    assert base64.b64decode(stored[1]["value_b64"]) == bad_json
    assert isinstance(stored[1]["timestamp"], dt.datetime)
