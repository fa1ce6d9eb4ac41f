"""The MongoDB sink: every record's history, one document per event_id (docs/storage.md).

Each batch becomes one unordered `bulk_write` of `ReplaceOne({"_id": event_id}, doc,
upsert=True)` per collection: a redelivered record replaces itself, and nx-27017 upserts
fast only when the filter is `_id` alone. Within a batch the last version of an `_id` wins
(an open OHLC bar and its final version share one), so the unordered bulk cannot apply an
older version last. Top-level timestamps become BSON datetimes; everything else is stored
as published.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, ReplaceOne
from pymongo.database import Database
from pymongo.errors import (AutoReconnect, BulkWriteError, ConnectionFailure, ExecutionTimeout,
                            OperationFailure, PyMongoError, WTimeoutError)

from deltastream.clients import mongo_client
from deltastream.settings import Settings
from schemas.topics import (DELTASTREAM_DLQ, DELTASTREAM_LOGS, MONGO_COLLECTIONS)
from sinks.base import Batch, Rejected, Sink, SinkRecord

log = logging.getLogger(__name__)

MONGO_TOPICS: tuple[str, ...] = tuple(MONGO_COLLECTIONS)  # market.*, analytics.*, dlq, logs

Keys = tuple[tuple[str, int], ...]


def _keys(*fields: str) -> Keys:
    return tuple((f, ASCENDING) for f in fields)


# Compound indexes for the REST queries (docs/storage.md); TTL indexes are added per settings.
INDEXES: dict[str, list[Keys]] = {
    "underlying_ticks": [_keys("product", "timestamp")],
    "option_quotes": [_keys("symbol", "timestamp"), _keys("product", "expiry", "timestamp")],
    "option_chains": [_keys("product", "expiry", "timestamp")],
    "underlying_enriched": [_keys("product", "timestamp")],
    "chain_analytics": [_keys("product", "expiry", "timestamp"), _keys("product", "timestamp")],
    "ohlc_bars": [_keys("product", "interval", "start_time"), _keys("symbol", "interval", "start_time")],
    "vol_surfaces": [_keys("product", "timestamp")],
    "news": [_keys("product", "timestamp")],
    "logs": [_keys("service", "level", "timestamp")],
    "dlq": [],
}

# Per-document errors worth retrying: a concurrent upsert of the same _id (11000) and
# nx-27017's SQLite being busy, locked or out of space (it reports those as code 8).
_TRANSIENT_WRITE_CODES = {11000, 11600, 11602, 189, 91, 10107, 13435, 13436, 262, 50}
_TRANSIENT_WRITE_TEXT = ("locked", "busy", "disk", "full", "timeout", "interrupted")
_TRANSIENT_CODES = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435, 13436, 50}


class TransientBulkError(PyMongoError):
    """A bulk write where some documents failed for a reason worth retrying."""


def ttl_indexes(settings: Settings) -> dict[str, tuple[Keys, int | None]]:
    """The single-field (timestamp) index of `logs` and `dlq`, with its TTL in seconds."""
    def seconds(days: float) -> int | None:
        return int(days * 86_400) if days > 0 else None

    return {MONGO_COLLECTIONS[DELTASTREAM_LOGS]: (_keys("timestamp"), seconds(settings.mongo_logs_retention_days)),
            MONGO_COLLECTIONS[DELTASTREAM_DLQ]: (_keys("timestamp"), seconds(settings.mongo_dlq_retention_days))}


def ensure_indexes(db: Database, settings: Settings) -> list[str]:
    """Create the indexes of docs/storage.md that are missing; set the TTLs. Returns what changed."""
    wanted: dict[str, list[tuple[Keys, int | None]]] = {
        coll: [(keys, None) for keys in specs] for coll, specs in INDEXES.items()}
    for coll, spec in ttl_indexes(settings).items():
        wanted[coll].append(spec)
    changed = []
    for coll, specs in wanted.items():
        existing = {tuple((k, int(v)) for k, v in info["key"].items()): info
                    for info in db[coll].list_indexes()}
        for keys, ttl in specs:
            info = existing.get(keys)
            if info is not None and info.get("expireAfterSeconds") == ttl:
                continue
            if info is not None:  # same keys, other TTL: replace it
                db[coll].drop_index(info["name"])
            options = {} if ttl is None else {"expireAfterSeconds": ttl}
            db[coll].create_index(list(keys), **options)
            changed.append(f"{coll}({', '.join(k for k, _ in keys)})" + (f" ttl={ttl}s" if ttl else ""))
    if changed:
        log.info("created indexes: %s", "; ".join(changed))
    return changed


def to_document(record: SinkRecord) -> dict[str, Any]:
    doc = dict(record.data)
    doc.update(record.times)
    doc["_id"] = record.data["event_id"]
    return doc


@dataclass
class CollectionStats:
    documents: int = 0
    bulks: int = 0
    seconds: float = 0.0


class MongoSink(Sink):
    name = "mongo"
    # History, not live: nx-27017 spends less per record in fewer, larger bulk writes, and
    # with small eager batches it fell behind the feed at 10k quotes/s on this box.
    eager = False

    def __init__(self, settings: Settings, client=None) -> None:
        self.settings = settings
        self.client = client or mongo_client(settings)
        self.db: Database = self.client[settings.mongo_db]
        self.stats: dict[str, CollectionStats] = {}

    def start(self) -> None:
        ensure_indexes(self.db, self.settings)

    def write(self, batch: Batch) -> list[Rejected]:
        by_collection: dict[str, dict[str, tuple[SinkRecord, dict[str, Any]]]] = {}
        for record in batch.records:  # consumed order: the last version of an _id wins
            doc = to_document(record)
            by_collection.setdefault(MONGO_COLLECTIONS[record.topic], {})[doc["_id"]] = (record, doc)
        rejected: list[Rejected] = []
        for name, entries in by_collection.items():
            items = list(entries.values())
            started = time.perf_counter()
            try:
                self.db[name].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for _, d in items],
                                         ordered=False)
            except BulkWriteError as exc:
                rejected += self._refused(name, items, exc)
            stats = self.stats.setdefault(name, CollectionStats())
            stats.documents += len(items)
            stats.bulks += 1
            stats.seconds += time.perf_counter() - started
        return rejected

    @staticmethod
    def _refused(name: str, items: list[tuple[SinkRecord, dict]], exc: BulkWriteError) -> list[Rejected]:
        details = exc.details or {}
        errors = details.get("writeErrors", [])
        if details.get("writeConcernErrors") or any(_transient_write_error(e) for e in errors):
            raise TransientBulkError(f"{name}: {len(errors)} write errors, first: "
                                     f"{errors[0]['errmsg'] if errors else details['writeConcernErrors'][0]}")
        return [Rejected(items[e["index"]][0], f"MongoDB refused the document for {name}: {e.get('errmsg')}",
                         f"MongoWriteError{e.get('code')}") for e in errors]

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, (AutoReconnect, ConnectionFailure, ExecutionTimeout, WTimeoutError,
                            TransientBulkError)):
            return True
        if isinstance(exc, OperationFailure):
            return exc.has_error_label("RetryableWriteError") or exc.code in _TRANSIENT_CODES
        return False

    def close(self) -> None:
        self.client.close()


def _transient_write_error(error: dict[str, Any]) -> bool:
    if error.get("code") in _TRANSIENT_WRITE_CODES:
        return True
    text = str(error.get("errmsg", "")).lower()
    return any(word in text for word in _TRANSIENT_WRITE_TEXT)
