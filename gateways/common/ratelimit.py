"""Rate limits per user and per client IP, shared by every gateway process through Redis.

`limits` (moving window: exact, no burst at window boundaries) keeps its counters in
Redis, so two gateway processes behind a load balancer spend one budget. A request over
budget gets 429 with `Retry-After` (seconds until the oldest counted request leaves the
window). If Redis cannot be reached the limiter fails open: rate limiting is protection,
and the data routes fall back to MongoDB, so an outage of the limiter's store should not
take reads down with it (logged, at most every 30 s).
"""
from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass

from fastapi import HTTPException
from limits import RateLimitItem, parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from deltastream.settings import Settings

log = logging.getLogger("deltastream.gateways.ratelimit")


class RateLimited(HTTPException):
    def __init__(self, what: str, limit: RateLimitItem, retry_after: int) -> None:
        super().__init__(429, f"rate limit exceeded for this {what}: {limit}; retry in {retry_after} s",
                         headers={"Retry-After": str(retry_after)})


def _async_uri(uri: str) -> str:
    return uri if uri.startswith("async+") else f"async+{uri}"


@dataclass
class RateLimiter:
    per_user: RateLimitItem
    per_ip: RateLimitItem
    limiter: MovingWindowRateLimiter
    storage: RedisStorage
    _warned_at: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, namespace: str) -> "RateLimiter":
        # One namespace per gateway kind: a request the API gateway proxies to a separately
        # deployed service is counted once by each, against budgets of their own.
        storage = RedisStorage(_async_uri(settings.redis_uri), implementation="redispy",
                               key_prefix=f"ratelimit:{namespace}", socket_connect_timeout=1,
                               socket_timeout=2)
        return cls(parse(settings.rate_limit_user), parse(settings.rate_limit_ip),
                   MovingWindowRateLimiter(storage), storage)

    async def check(self, ip: str, user: str | None = None) -> None:
        """Count one request of `ip` (and `user`); RateLimited when either budget is spent."""
        checks = [("client IP", self.per_ip, f"ip:{ip}")]
        if user is not None:
            checks.insert(0, ("user", self.per_user, f"user:{user}"))
        try:
            # both counters in one round trip's time
            allowed = await asyncio.gather(*(self.limiter.hit(item, key) for _, item, key in checks))
            for (what, item, key), ok in zip(checks, allowed):
                if not ok:
                    stats = await self.limiter.get_window_stats(item, key)
                    raise RateLimited(what, item, max(1, math.ceil(stats.reset_time - time.time())))
        except RateLimited:
            raise
        except Exception as exc:  # noqa: BLE001 - any store failure: fail open
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning("rate limiter store unavailable, not limiting: %s: %s", type(exc).__name__, exc)
