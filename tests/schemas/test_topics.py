"""The topic registry."""
from __future__ import annotations

import subprocess
import sys

import pytest

from schemas import topics
from schemas.export import JSON_DIR
from schemas.topics import TOPICS, TopicSpec, topic_specs

EXPECTED = {
    "market.underlying": ("underlying_tick.v1", 3), "market.option_quotes": ("option_quote.v1", 6),
    "market.option_chains": ("option_chain.v1", 6), "market.news": ("news_item.v1", 1),
    "analytics.underlying": ("enriched_underlying.v1", 3), "analytics.chain": ("chain_analytics.v1", 3),
    "analytics.ohlc": ("ohlc_bar.v1", 3), "analytics.vol_surface": ("vol_surface.v1", 3),
    "deltastream.dlq": ("dlq_record.v1", 1), "deltastream.logs": ("log_record.v1", 1),
}
HOUR = 3_600_000


def test_registry_contents():
    assert {name: (s.schema.SCHEMA, s.partitions) for name, s in TOPICS.items()} == EXPECTED
    assert all(name == spec.name and spec.key and spec.description for name, spec in TOPICS.items())
    schema_ids = [s.schema.SCHEMA for s in TOPICS.values()]
    assert len(set(schema_ids)) == len(schema_ids)  # one topic per record type


def test_every_schema_is_exported():
    for spec in TOPICS.values():
        assert (JSON_DIR / f"{spec.schema.SCHEMA}.json").is_file()


def test_retention():
    for name, spec in TOPICS.items():
        assert spec.config["cleanup.policy"] == "delete"
        hours = {"deltastream.dlq": 24 * 7, "deltastream.logs": 24}.get(name, 6)
        assert spec.config["retention.ms"] == str(hours * HOUR)


def test_name_constants():
    names = {v for k, v in vars(topics).items() if k.isupper() and isinstance(v, str) and "." in v}
    assert names == set(TOPICS)
    assert topics.MARKET_OPTION_QUOTES == "market.option_quotes"


def test_prefix():
    plain = topic_specs()
    replay = topic_specs("replay.")
    assert [s.name for s in plain] == list(TOPICS)
    assert [s.name for s in replay] == ["replay." + n for n in TOPICS]
    assert len({s.name for s in replay}) == len(replay)
    assert all(isinstance(s, TopicSpec) and s.schema is TOPICS[s.name[7:]].schema for s in replay)
    replay[0].config["retention.ms"] = "1"  # a copy: the registry is untouched
    assert TOPICS["market.underlying"].config["retention.ms"] == str(6 * HOUR)
    hash(replay[0])  # frozen specs stay hashable despite the config dict
    with pytest.raises(ValueError, match="prefix"):
        topic_specs("bad prefix/")


def test_schemas_import_no_io_or_upstream_packages():
    code = ("import sys, schemas, schemas.export; "
            "print(sorted({m.split('.')[0] for m in sys.modules}))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True, cwd=JSON_DIR.parents[1]).stdout
    for forbidden in ("producers", "stream_processors", "sinks", "gateways", "confluent_kafka",
                      "faust", "aiokafka", "pymongo", "redis", "fastapi", "deltastream"):
        assert f"'{forbidden}'" not in loaded, forbidden
