"""Replay from the MongoDB history the sinks keep (it outlives the in-memory broker)."""
from __future__ import annotations

import datetime as dt
import heapq
from typing import Any, Iterator

from deltastream.clients import mongo_client
from deltastream.settings import Settings
from producers.replay.record import ReplayRecord
from schemas.codec import encode_dict, headers
from schemas.records import iso_z
from schemas.topics import MONGO_COLLECTIONS, TOPICS


def _to_json(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document back in its published JSON shape."""
    doc.pop("_id", None)
    for name, value in doc.items():
        if isinstance(value, dt.datetime):
            doc[name] = iso_z(value)
    return doc


def mongo_records(settings: Settings, topics: list[str], start: dt.datetime,
                  end: dt.datetime) -> Iterator[ReplayRecord]:
    """Stored records of `topics` with start <= timestamp <= end, in replay order.

    Offsets are positions within the query (partition 0): MongoDB does not keep Kafka's."""
    unknown = [t for t in topics if t not in MONGO_COLLECTIONS]
    if unknown:
        raise ValueError(f"no MongoDB history for {', '.join(unknown)}; known: {', '.join(MONGO_COLLECTIONS)}")
    client = mongo_client(settings)
    db = client[settings.mongo_db]

    def stream(topic: str) -> Iterator[tuple[tuple, ReplayRecord]]:
        model = TOPICS[topic].schema
        hdrs = tuple(headers(model.SCHEMA))
        cursor = db[MONGO_COLLECTIONS[topic]].find(
            {"timestamp": {"$gte": start, "$lte": end}}).sort([("timestamp", 1), ("_id", 1)])
        for position, doc in enumerate(cursor):
            ts_ms = int(doc["timestamp"].timestamp() * 1000)
            body = _to_json(doc)
            key = model.model_validate(body).key().encode()
            record = ReplayRecord(topic, 0, position, ts_ms, key, encode_dict(body), hdrs)
            yield record.order, record

    try:
        for _, record in heapq.merge(*(stream(t) for t in topics), key=lambda pair: pair[0]):
            yield record
    finally:
        client.close()
