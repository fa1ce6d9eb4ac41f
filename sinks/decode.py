"""Consumed messages → `SinkRecord`s, or a `SchemaError` saying why the message is poison.

With `sink_validate` (the default) every message is validated by its record model
(`schemas.codec.decode`, what the schema files say). For the hot shapes (ticks, enriched
ticks, chain analytics, chain snapshots) `sinks.fastcheck` checks the parsed dict first,
without pydantic (~3x cheaper for small records), and hands anything it cannot vouch for to
the model. Without validation the sink only checks what it relies on itself: a JSON object, the model's required fields present (maybe null), parseable
timestamps and an event_id; about 5x cheaper for small records, 10x for chain snapshots.
Either way the stored JSON is the message as received (extra, newer fields included).
"""
from __future__ import annotations

import datetime as dt
from typing import Any

from schemas.codec import SCHEMA_HEADER, SchemaError, decode, decode_dict, schema_of
from schemas.records import Record
from schemas.topics import TOPICS
from sinks.base import SinkRecord
from sinks.fastcheck import CHECKS, NotFast

UTC = dt.timezone.utc
TIME_FIELDS = ("timestamp", "start_time", "end_time")  # stored as real datetimes


def parse_time(value: Any, name: str) -> dt.datetime:
    if not isinstance(value, str):
        raise SchemaError(f"{name}: expected an ISO-8601 string, got {type(value).__name__}")
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SchemaError(f"{name}: not an ISO-8601 time: {value[:40]!r}") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


class TopicDecoder:
    """Decodes the messages of one topic with its registry model."""

    def __init__(self, name: str, kafka_topic: str, validate: bool) -> None:
        self.name, self.kafka_topic, self.validate = name, kafka_topic, validate
        self.model: type[Record] = TOPICS[name].schema
        fields = self.model.model_fields
        self.time_fields = tuple(f for f in TIME_FIELDS if f in fields)
        self.required = tuple((f.alias or n) for n, f in fields.items()
                              if f.is_required() and n != "event_id")
        self.fast = CHECKS.get(self.model) if validate else None
        # what producers put first: then the header check is one tuple comparison
        self.header = (SCHEMA_HEADER, self.model.SCHEMA.encode())

    def __call__(self, msg) -> SinkRecord:
        value = msg.value()
        data = decode_dict(value)  # SchemaError: empty, not JSON, not an object
        hdrs = msg.headers()
        if hdrs and hdrs[0] != self.header:
            schema = schema_of(hdrs)
            if schema is not None and schema != self.model.SCHEMA:
                raise SchemaError(f"header ds-schema {schema!r} on a topic of {self.model.SCHEMA}")
        times = None
        if self.fast is not None:
            try:
                times = self.fast(data)
            except NotFast:  # not necessarily invalid: the model decides
                pass
        if times is not None:  # the fast check vouched for it (and set a missing event_id)
            pass
        elif self.validate:
            record = decode(value, self.model)
            times = {f: getattr(record, f) for f in self.time_fields}
            if data.get("event_id") is None:
                data["event_id"] = record.event_id
        else:
            missing = [f for f in self.required if f not in data]
            if missing:
                raise SchemaError(f"{self.model.SCHEMA}: missing {', '.join(missing)}")
            times = {f: parse_time(data[f], f) for f in self.time_fields if data.get(f) is not None}
            if data.get("event_id") is None:
                try:
                    data["event_id"] = self.model.default_event_id(data)
                except (KeyError, TypeError, ValueError):
                    data["event_id"] = None
        event_id = data.get("event_id")
        if not isinstance(event_id, str) or not event_id:
            raise SchemaError(f"{self.model.SCHEMA}: event_id must be a non-empty string")
        return SinkRecord(self.name, self.kafka_topic, msg.partition(), msg.offset(), msg.key(),
                          value, data, times)
