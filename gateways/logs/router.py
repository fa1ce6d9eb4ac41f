"""`/logs`: ingest a batch of structured log records, and query them.

Where logs live: DeltaStream processes ship theirs to Kafka `deltastream.logs`
(`gateways.logs.shipping`), and the MongoDB sink stores that topic in `logs` (TTL
`mongo_logs_retention_days`, docs/storage.md). `GET /logs` reads that collection.
`POST /logs` writes straight into the same collection, in the sink's document shape
(`_id` = event_id, `timestamp` a real datetime), rather than producing to Kafka: a client
can read its logs back at once, the log service needs no broker, and a record that also
arrives through Kafka is the same upsert, not a duplicate. Ingested records are forwarded
to Loki as well when DELTASTREAM_LOKI_URL is set.
"""
from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, Field, ValidationError, field_validator
from pymongo import DESCENDING, ReplaceOne

from gateways.common.deps import Resources, ResourcesDep, current_user
from gateways.common.errors import DATA_ERRORS, responses
from gateways.common.jsonio import JSONBytes, json_response, public, storable, utc_param
from gateways.common.market import in_thread
from schemas.records import LOG_LEVELS, LogRecord, Timestamp

COLLECTION = "logs"
Level = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


class LogIn(BaseModel):
    """One log record to ingest; `timestamp` defaults to now, `event_id` to a digest."""

    service: str = Field(min_length=1, max_length=256, examples=["my-strategy"])
    level: Level = "INFO"
    message: str = Field(max_length=65_536)
    logger: str = Field(default="", max_length=256)
    timestamp: Timestamp | None = None
    extra: dict[str, Any] = Field(default_factory=dict)
    event_id: str | None = Field(default=None, min_length=1, max_length=256)

    @field_validator("level", mode="before")
    @classmethod
    def _upper(cls, v: Any) -> Any:
        return v.upper() if isinstance(v, str) else v

    @field_validator("service", "message", "logger", "extra", "event_id")
    @classmethod
    def _storable(cls, v: Any) -> Any:
        return storable(v)


class LogBatch(BaseModel):
    logs: list[LogIn] = Field(min_length=1, max_length=1000)


class Ingested(BaseModel):
    accepted: int
    event_ids: list[str]


class LogOut(BaseModel):
    timestamp: Timestamp
    service: str
    level: Level
    logger: str
    message: str
    extra: dict[str, Any] = {}
    event_id: str


class LogPage(BaseModel):
    count: int
    logs: list[LogOut] = Field(description="newest first")


def _ensure_indexes(resources: Resources) -> None:
    """The `logs` indexes and TTL as the MongoDB sink makes them (it may not run here)."""
    if resources.extras.get("logs_indexed"):
        return
    from sinks.mongo_sink import INDEXES, ttl_indexes

    coll = resources.db[COLLECTION]
    for keys in INDEXES[COLLECTION]:
        coll.create_index(list(keys))
    keys, ttl = ttl_indexes(resources.settings)[COLLECTION]
    existing = {tuple((k, int(v)) for k, v in i["key"].items()): i for i in coll.list_indexes()}
    if keys not in existing:  # the sink replaces a TTL that changed; creating it once is enough here
        coll.create_index(list(keys), **({"expireAfterSeconds": ttl} if ttl else {}))
    resources.extras["logs_indexed"] = True


def _store(resources: Resources, batch: LogBatch) -> list[str]:
    now = dt.datetime.now(dt.timezone.utc)
    docs = []
    for entry in batch.logs:
        data = entry.model_dump(exclude_none=True)
        data.setdefault("timestamp", now)
        record = LogRecord.model_validate(data)  # the published schema: event_id, level, JSON-safe extra
        doc = orjson.loads(record.model_dump_json())
        doc["timestamp"] = record.timestamp
        doc["_id"] = record.event_id
        docs.append(doc)
    _ensure_indexes(resources)
    resources.db[COLLECTION].bulk_write([ReplaceOne({"_id": d["_id"]}, d, upsert=True) for d in docs],
                                        ordered=False)
    loki = _loki(resources)
    if loki is not None:
        for d in docs:
            loki.submit(d)
    return [d["_id"] for d in docs]


def _loki(resources: Resources):
    url = resources.settings.loki_url
    if not url:
        return None
    forwarder = resources.extras.get("loki")
    if forwarder is None:
        from gateways.logs.loki import LokiForwarder

        forwarder = resources.extras["loki"] = LokiForwarder(url)
    return forwarder


def logs_router() -> APIRouter:
    router = APIRouter(prefix="/logs", tags=["logs"], dependencies=[Depends(current_user)],
                       responses=DATA_ERRORS)

    @router.post("", response_model=Ingested, status_code=202, responses=responses(400))
    async def ingest(batch: LogBatch, resources: ResourcesDep) -> Ingested:
        """Store a batch of 1-1000 log records (idempotent per event_id)."""
        try:
            ids = await in_thread(_store, resources, batch)
        except ValidationError as exc:  # e.g. an event_id or service the record schema refuses
            from fastapi.exceptions import RequestValidationError

            raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
        return Ingested(accepted=len(ids), event_ids=ids)

    @router.get("", response_model=LogPage, response_class=JSONBytes)
    async def query(resources: ResourcesDep,
                    service: Annotated[str | None, Query(max_length=256)] = None,
                    level: Annotated[Level | None, Query(description="this level and above")] = None,
                    since: Annotated[dt.datetime | None, Query(description="ISO-8601; naive means UTC")] = None,
                    q: Annotated[str | None, Query(max_length=256, description="text in the message "
                                                                               "(case-insensitive)")] = None,
                    limit: Annotated[int, Query(ge=1, le=5000)] = 100) -> JSONBytes:
        """Stored log records, newest first."""
        match: dict[str, Any] = {}
        if service:
            match["service"] = service
        if level:
            match["level"] = {"$in": list(LOG_LEVELS[LOG_LEVELS.index(level):])}
        when = utc_param(since, "since")
        if when is not None:
            match["timestamp"] = {"$gte": when}
        if q:
            match["message"] = {"$regex": re.escape(q), "$options": "i"}

        def find() -> list[dict]:
            cursor = resources.db[COLLECTION].find(match).sort("timestamp", DESCENDING).limit(limit)
            return [public(d) for d in cursor]

        docs = await in_thread(find)
        return json_response({"count": len(docs), "logs": docs})

    return router


