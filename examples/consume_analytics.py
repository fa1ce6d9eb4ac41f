"""Consume DeltaStream's analytics with a plain confluent-kafka consumer and validate every
record against the published JSON Schemas — what a team plugging its own consumer in does.

    python examples/consume_analytics.py --bootstrap 127.0.0.1:9092 --max 100

Needs only confluent-kafka and jsonschema (no DeltaStream import): copy it anywhere.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jsonschema
from confluent_kafka import Consumer

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas" / "json"
TOPICS = ["analytics.chain", "analytics.ohlc", "analytics.vol_surface", "analytics.underlying"]


def load_validators(schema_dir: Path) -> dict[str, jsonschema.Draft202012Validator]:
    """One validator per schema id (the `ds-schema` header names it, e.g. chain_analytics.v1)."""
    return {path.stem: jsonschema.Draft202012Validator(json.loads(path.read_text()))
            for path in schema_dir.glob("*.json")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--group", default="my-team-analytics")
    parser.add_argument("--topics", default=",".join(TOPICS))
    parser.add_argument("--max", type=int, default=0, help="stop after this many records (0: run forever)")
    parser.add_argument("--schemas", type=Path, default=SCHEMA_DIR)
    args = parser.parse_args()

    validators = load_validators(args.schemas)
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": args.group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": True,
                         # short sessions: the embedded broker admits members after ~half of it
                         "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000})
    consumer.subscribe(args.topics.split(","))
    seen = invalid = 0
    try:
        while not args.max or seen < args.max:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                print(f"kafka error: {msg.error()}", file=sys.stderr)
                continue
            headers = dict(msg.headers() or [])
            schema_id = headers.get("ds-schema", b"").decode()
            record = json.loads(msg.value())
            errors = list(validators[schema_id].iter_errors(record)) if schema_id in validators else ["unknown schema"]
            seen += 1
            if errors:
                invalid += 1
                print(f"INVALID {msg.topic()} {schema_id}: {errors[0]}", file=sys.stderr)
            else:
                print(f"{msg.topic():<24} key={msg.key().decode():<24} {schema_id:<22} event_id={record['event_id']}")
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    print(f"{seen} records, {invalid} invalid", file=sys.stderr)
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
