"""Reading the stores the sinks write (docs/storage.md), shared by storage and analytics.

`Latest` is the Redis side: `latest:*` values, the `products` set and `expiries:{product}`.
It reads through to MongoDB: on a miss (or while Redis is down) the caller loads the value
from MongoDB, and `remember` puts it back with a short TTL and NX, so the sink's own newer
value is never overwritten and a stale one cannot linger. `MarketRepository` is the MongoDB
side: blocking pymongo calls, run in the threadpool by the routes.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import time
from typing import Any

from fastapi import HTTPException
from pymongo import ASCENDING, DESCENDING
from pymongo.database import Database
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from deltastream.settings import Settings
from gateways.common.batching import AutoPipeline
from gateways.common.errors import invalid
from gateways.common.jsonio import dumps, public
from schemas.records import iso_z

log = logging.getLogger("deltastream.gateways.market")

PRODUCT_PATTERN = r"^[A-Z0-9][A-Z0-9._&-]{0,31}$"
SYMBOL_PATTERN = r"^[A-Z0-9][A-Z0-9._&-]*\d{8}[CP]\d+(\.\d+)?$"
_SYMBOL = re.compile(r"^(?P<product>.+?)(?P<ymd>\d{8})(?P<type>[CP])(?P<strike>\d+(?:\.\d+)?)$")
READ_THROUGH_TTL = 10  # seconds a value loaded from MongoDB stays in Redis


def product_of_symbol(symbol: str) -> str:
    match = _SYMBOL.match(symbol)
    if match is None:
        raise invalid(("path", "symbol"), "not an option symbol (PRODUCT + YYYYMMDD + C|P + strike)", symbol)
    return match["product"]


class Latest:
    def __init__(self, redis: AsyncRedis, settings: Settings, batch: AutoPipeline | None = None) -> None:
        self.redis, self.settings = redis, settings
        self.batch = batch or AutoPipeline(redis)  # GETs of concurrent requests, pipelined
        self._warned = 0.0

    def _down(self, exc: Exception) -> None:
        if time.monotonic() - self._warned > 30:
            self._warned = time.monotonic()
            log.warning("Redis unavailable, reading MongoDB instead: %s", exc)

    async def get(self, key: str) -> bytes | None:
        try:
            return await self.batch.execute("GET", key)
        except RedisError as exc:
            self._down(exc)
            return None

    async def mget(self, keys: list[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            return await self.redis.mget(keys)
        except RedisError as exc:
            self._down(exc)
            return [None] * len(keys)

    async def remember(self, key: str, value: bytes) -> None:
        try:
            await self.redis.set(key, value, ex=READ_THROUGH_TTL, nx=True)
        except RedisError as exc:
            self._down(exc)

    async def products(self) -> set[str]:
        try:
            seen = {p.decode() for p in await self.redis.smembers("products")}
        except RedisError as exc:
            self._down(exc)
            seen = set()
        return seen | set(self.settings.products)

    async def expiries(self, product: str) -> list[str]:
        try:
            return [e.decode() for e in await self.redis.zrange(f"expiries:{product}", 0, -1)]
        except RedisError as exc:
            self._down(exc)
            return []

    async def require_product(self, product: str) -> str:
        """404 unless the product is configured or has been seen by the sinks."""
        if product in self.settings.products:
            return product
        try:
            if await self.redis.sismember("products", product):
                return product
        except RedisError as exc:
            self._down(exc)
        raise HTTPException(404, f"unknown product {product!r}")


def _range(field: str, bounds: dict[str, dt.datetime]) -> dict[str, Any]:
    return {field: bounds} if bounds else {}


class MarketRepository:
    """Queries on the collections of docs/storage.md; documents come back as published."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def history(self, collection: str, match: dict[str, Any], bounds: dict[str, dt.datetime],
                limit: int, time_field: str = "timestamp",
                projection: dict[str, int] | None = None) -> list[dict[str, Any]]:
        """The newest `limit` documents within the bounds, oldest first."""
        cursor = (self.db[collection].find(match | _range(time_field, bounds), projection)
                  .sort(time_field, DESCENDING).limit(limit))
        docs = [public(d) for d in cursor]
        docs.reverse()
        return docs

    def latest(self, collection: str, match: dict[str, Any], at: dt.datetime | None = None,
               time_field: str = "timestamp") -> dict[str, Any] | None:
        """The newest document (at or before `at` when given)."""
        query = match | ({time_field: {"$lte": at}} if at is not None else {})
        doc = self.db[collection].find_one(query, sort=[(time_field, DESCENDING)])
        return None if doc is None else public(doc)

    def earliest(self, collection: str, match: dict[str, Any], since: dt.datetime,
                 time_field: str = "timestamp") -> dict[str, Any] | None:
        doc = self.db[collection].find_one(match | {time_field: {"$gte": since}},
                                           sort=[(time_field, ASCENDING)])
        return None if doc is None else public(doc)

    def distinct(self, collection: str, field: str, match: dict[str, Any]) -> list[Any]:
        return sorted(v for v in self.db[collection].distinct(field, match) if v is not None)


async def in_thread(fn, *args, **kwargs):
    return await run_in_threadpool(fn, *args, **kwargs)


def latest_of(resources) -> Latest:
    """The app's `Latest` (one per app, so its outage warnings are throttled app-wide)."""
    latest = resources.extras.get("latest")
    if latest is None:
        latest = resources.extras["latest"] = Latest(resources.aredis, resources.settings, resources.batch)
    return latest


async def latest_or_at(resources, product: str, key: str, collection: str, query: dict[str, Any],
                       when: dt.datetime | None, what: str) -> bytes:
    """A stored record as JSON: the latest (Redis `key`, read through to MongoDB) or, with
    `when`, the last one at or before it (MongoDB); 404 naming `what` when there is none."""
    latest = latest_of(resources)
    await latest.require_product(product)
    if when is None:
        cached = await latest.get(key)
        if cached is not None:
            return cached
    doc = await in_thread(MarketRepository(resources.db).latest, collection, query, when)
    if doc is None:
        moment = f" at or before {iso_z(when)}" if when is not None else ""
        raise HTTPException(404, f"no {what}{moment}")
    body = dumps(doc)
    if when is None:
        await latest.remember(key, body)
    return body
