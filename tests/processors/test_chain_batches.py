"""The chain unit computes a whole batch at once (`ChainProcessor.apply_many`); a snapshot the
processor fails on sends the batch key by key, so only that snapshot goes to the DLQ."""
from __future__ import annotations

import json

import orjson
import pytest

from schemas.codec import decode
from schemas.records import ChainAnalytics, DlqRecord
from schemas.topics import ANALYTICS_CHAIN, DELTASTREAM_DLQ, MARKET_OPTION_CHAINS
from tests.processors.harness import (Msg, Outputs, Worker, close, expected_analytics,
                                      market_messages, processor_settings, publish, unique_records)

pytestmark = pytest.mark.integration


def failing_chain(good: Msg) -> Msg:
    """Valid for the schema, but its open interest sums to infinity: no integer total."""
    chain = json.loads(good.value)
    chain["calls"][0]["open_interest"] = chain["calls"][1]["open_interest"] = 10**308
    chain["event_id"] += "-overflow"
    return Msg(MARKET_OPTION_CHAINS, good.key, json.dumps(chain).encode())


def test_a_snapshot_the_processor_fails_on_goes_to_the_dlq_alone(stack, unique, tmp_path):
    settings = processor_settings(stack, unique, tmp_path)
    clean = market_messages(settings, 40, quotes=False)
    chains = [m for m in clean if m.topic == MARKET_OPTION_CHAINS]
    bad = failing_chain(chains[10])
    records = unique_records(clean)[MARKET_OPTION_CHAINS]
    worker = Worker(stack, settings, tmp_path / "worker.log")
    out = Outputs(settings, f"check-{unique}")
    try:
        worker.wait_for("partitions assigned")
        publish(settings, chains[:40] + [bad] + chains[40:])
        out.until(lambda o: len(o.latest(ANALYTICS_CHAIN)) >= len(records) and o.by_topic[DELTASTREAM_DLQ])
        analytics = out.latest(ANALYTICS_CHAIN)
        assert analytics.keys() == {c.event_id for c in records}
        for chain in records:
            got = analytics[chain.event_id]
            decode(orjson.dumps(got), ChainAnalytics)
            for field, value in expected_analytics(chain).items():
                assert close(got[field], value), (chain.event_id, field, got[field], value)
        dlq = [decode(m.value(), DlqRecord) for m in out.raw[DELTASTREAM_DLQ]]
        assert len(dlq) == 1 and "processing failed" in dlq[0].reason and "Overflow" in dlq[0].reason
        assert dlq[0].source_key == bad.key
    finally:
        out.close()
        assert worker.stop() == 0, worker.text()[-2000:]
