"""Rate limits per user and per client IP, shared by every gateway process through Redis.

Moving window (exact, no burst at window boundaries), kept in Redis so that two gateway
processes behind a load balancer spend one budget. Both counters of a request are counted
by one Lua script, so a request costs one Redis round trip however many budgets it spends.
The script is `limits`' moving-window acquire applied to each key in turn, on the same keys
and list layout (`{prefix}:LIMITER/{who}/{amount}/{multiples}/{granularity}`, newest
timestamp first): each budget is spent independently (a request refused for its user
still spends its IP's budget, as before), and for a refused budget the script returns the
oldest counted timestamp, so `Retry-After` (seconds until that request leaves the window)
needs no second call.

A request over budget gets 429 with `Retry-After`. If Redis cannot be reached the limiter
fails open: rate limiting is protection, and the data routes fall back to MongoDB, so an
outage of the limiter's store should not take reads down with it (logged, at most every 30 s).
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

from fastapi import HTTPException
from limits import RateLimitItem, parse
from redis.exceptions import NoScriptError

from deltastream.settings import Settings
from gateways.common.batching import AutoPipeline

log = logging.getLogger("deltastream.gateways.ratelimit")

# KEYS: one list per budget. ARGV: now, then (limit, expiry seconds) per key.
# Returns one value per key: "" when counted, else the oldest counted timestamp (as text:
# Lua would truncate a number returned to the client to an integer).
_ACQUIRE = """
local now = tonumber(ARGV[1])
local out = {}
for i, key in ipairs(KEYS) do
    local limit = tonumber(ARGV[2 * i])
    local expiry = tonumber(ARGV[2 * i + 1])
    local oldest = redis.call('lindex', key, limit - 1)
    if oldest and tonumber(oldest) >= now - expiry then
        out[i] = oldest
    else
        redis.call('lpush', key, ARGV[1])
        redis.call('ltrim', key, 0, limit - 1)
        redis.call('expire', key, expiry)
        out[i] = ''
    end
end
return out
"""


class RateLimited(HTTPException):
    def __init__(self, what: str, limit: RateLimitItem, retry_after: int) -> None:
        super().__init__(429, f"rate limit exceeded for this {what}: {limit}; retry in {retry_after} s",
                         headers={"Retry-After": str(retry_after)})


class Budget:
    """One rate-limit item and how its Redis key is spelled (as `limits` spells it)."""

    def __init__(self, what: str, item: RateLimitItem, prefix: str) -> None:
        self.what, self.item = what, item
        self.limit, self.expiry = str(item.amount), str(item.get_expiry())
        head, _, tail = item.key_for("\x00").partition("\x00")
        self._head, self._tail = f"{prefix}:{head}", tail

    def key(self, who: str) -> str:
        return f"{self._head}{who}{self._tail}"


@dataclass
class RateLimiter:
    per_user: Budget
    per_ip: Budget
    redis: AutoPipeline  # the script call shares a pipeline with the tick's other requests
    _sha: str | None = None
    _warned_at: float = 0.0

    @classmethod
    def from_settings(cls, settings: Settings, namespace: str, redis: AutoPipeline) -> "RateLimiter":
        # One namespace per gateway kind: a request the API gateway proxies to a separately
        # deployed service is counted once by each, against budgets of their own.
        prefix = f"ratelimit:{namespace}"
        return cls(Budget("user", parse(settings.rate_limit_user), prefix),
                   Budget("client IP", parse(settings.rate_limit_ip), prefix), redis)

    async def _acquire(self, keys: list[str], args: list[str]) -> list[bytes]:
        if self._sha is None:
            self._sha = await self.redis.execute("SCRIPT", "LOAD", _ACQUIRE)
        try:
            return await self.redis.execute("EVALSHA", self._sha, len(keys), *keys, *args)
        except NoScriptError:  # Redis restarted with an empty script cache
            self._sha = await self.redis.execute("SCRIPT", "LOAD", _ACQUIRE)
            return await self.redis.execute("EVALSHA", self._sha, len(keys), *keys, *args)

    async def check(self, ip: str, user: str | None = None) -> None:
        """Count one request of `ip` (and `user`); RateLimited when either budget is spent."""
        budgets = [self.per_user, self.per_ip] if user is not None else [self.per_ip]
        whos = [f"user:{user}", f"ip:{ip}"] if user is not None else [f"ip:{ip}"]
        now = time.time()
        args = [repr(now)]
        for budget in budgets:
            args += (budget.limit, budget.expiry)
        try:
            results = await self._acquire([b.key(w) for b, w in zip(budgets, whos)], args)
        except Exception as exc:  # noqa: BLE001 - any store failure: fail open
            self._warn(exc)
            return
        for budget, oldest in zip(budgets, results):
            if oldest:
                reset = float(oldest) + budget.item.get_expiry()
                raise RateLimited(budget.what, budget.item, max(1, math.ceil(reset - time.time())))

    def _warn(self, exc: Exception) -> None:
        now = time.monotonic()
        if now - self._warned_at > 30:
            self._warned_at = now
            log.warning("rate limiter store unavailable, not limiting: %s: %s", type(exc).__name__, exc)
