"""The per-request fast paths of the gateways: the JWT cache, the rate limiter's single Lua
script (same keys as `limits`, NOSCRIPT recovery, fail-open) and automatic pipelining of
concurrent Redis commands."""
from __future__ import annotations

import asyncio
import datetime as dt
import uuid

import pytest
from limits import parse
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from redis.exceptions import ConnectionError as RedisConnectionError, ResponseError

from deltastream.clients import async_redis_client
from deltastream.settings import Settings
from gateways.common.batching import AutoPipeline
from gateways.common.ratelimit import RateLimited, RateLimiter
from gateways.common.tokens import TokenCache, TokenError, WrongTokenType, issue_token
from tests.stack import free_port

SECRET = "hot-path-tests-secret-0123456789abcdef"


def test_token_cache_keeps_verified_tokens_until_they_expire():
    settings = Settings(_env_file=None, jwt_secret=SECRET)
    now = [dt.datetime.now(dt.timezone.utc).timestamp()]
    cache = TokenCache(settings, size=2, clock=lambda: now[0])
    token, issued = issue_token(settings, "ann@example.com", "access")
    claims = cache.decode(token)
    assert (claims.sub, claims.jti, claims.type) == (issued.sub, issued.jti, "access")
    assert cache.decode(token) is cache.decode(token)  # served from the cache

    refresh, _ = issue_token(settings, "ann@example.com", "refresh")
    with pytest.raises(WrongTokenType):
        cache.decode(refresh, "access")
    with pytest.raises(WrongTokenType):  # a cached access token is no refresh token
        cache.decode(token, "refresh")
    with pytest.raises(TokenError, match="invalid token"):  # a forged signature never hits
        cache.decode(token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    with pytest.raises(TokenError, match="missing"):
        cache.decode(None)

    now[0] = claims.exp.timestamp()  # expired exactly at exp, as pyjwt has it
    with pytest.raises(TokenError, match="expired"):
        cache.decode(token)
    with pytest.raises(TokenError, match="expired"):  # dropped, and pyjwt refuses it too
        TokenCache(settings).decode(issue_token(settings, "bob@example.com", "access",
                                                now=dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1))[0])

    others = [issue_token(settings, f"u{n}@example.com", "access")[0] for n in range(3)]
    for other in others:
        now[0] = dt.datetime.now(dt.timezone.utc).timestamp()
        cache.decode(other)
    assert list(cache._verified) == others[1:]  # bounded: least recently used out


def _limiter(redis_url: str, namespace: str, per_user: str = "3/minute", per_ip: str = "5/minute"):
    settings = Settings(_env_file=None, redis_url=redis_url, rate_limit_user=per_user, rate_limit_ip=per_ip)
    redis = async_redis_client(settings, socket_connect_timeout=1, socket_timeout=2)
    return RateLimiter.from_settings(settings, namespace, AutoPipeline(redis)), redis, settings


@pytest.mark.integration
async def test_rate_limiter_one_script_same_keys_as_limits(stack):
    namespace = f"hot-{uuid.uuid4().hex[:8]}"
    limiter, redis, settings = _limiter(stack.settings.redis_uri, namespace)
    try:
        for _ in range(3):
            await limiter.check("10.0.0.1", "ann")
        with pytest.raises(RateLimited) as refused:
            await limiter.check("10.0.0.1", "ann")
        assert refused.value.status_code == 429 and "for this user" in refused.value.detail
        assert 1 <= int(refused.value.headers["Retry-After"]) <= 60

        # the same counters as `limits` keeps them: its own moving window reads them
        storage = RedisStorage(f"async+{settings.redis_uri}", implementation="redispy",
                               key_prefix=f"ratelimit:{namespace}")
        window = MovingWindowRateLimiter(storage)
        assert (await window.get_window_stats(parse("3/minute"), "user:ann")).remaining == 0
        # the refused request still spent the IP's budget: 4 of 5
        assert (await window.get_window_stats(parse("5/minute"), "ip:10.0.0.1")).remaining == 1

        await redis.script_flush()  # Redis restarted: the script is loaded again
        await limiter.check("10.0.0.1", "bob")
        with pytest.raises(RateLimited) as refused:
            await limiter.check("10.0.0.1", "bob")
        assert "client IP" in refused.value.detail
        with pytest.raises(RateLimited):  # no user: the IP budget alone
            await limiter.check("10.0.0.1")
        await limiter.check("10.0.0.2")  # another IP has its own
    finally:
        await redis.aclose()

    dead, redis, _ = _limiter(f"redis://127.0.0.1:{free_port()}/0", namespace, "1/minute", "1/minute")
    try:
        for _ in range(3):  # fails open
            await dead.check("10.0.0.1", "ann")
    finally:
        await redis.aclose()


@pytest.mark.integration
async def test_auto_pipeline_batches_concurrent_commands_each_with_its_own_reply(stack):
    redis = async_redis_client(stack.settings)
    batch = AutoPipeline(redis)
    prefix = f"hot:{uuid.uuid4().hex[:8]}"
    sent: list[int] = []
    real_pipeline = redis.pipeline

    def counting_pipeline(*args, **kwargs):
        sent.append(1)
        return real_pipeline(*args, **kwargs)

    redis.pipeline = counting_pipeline  # type: ignore[method-assign]
    try:
        await redis.set(f"{prefix}:text", "not a number")
        replies = await asyncio.gather(
            *(batch.execute("SET", f"{prefix}:{n}", n) for n in range(50)),
            batch.execute("INCR", f"{prefix}:text"), return_exceptions=True)
        assert replies[:50] == [True] * 50
        assert isinstance(replies[50], ResponseError)  # its own error, nobody else's
        assert sent == [1]  # one pipeline for the whole tick
        got = await asyncio.gather(*(batch.execute("GET", f"{prefix}:{n}") for n in range(50)))
        assert got == [str(n).encode() for n in range(50)]
        assert await batch.execute("GET", f"{prefix}:none") is None  # a lone command
    finally:
        await redis.aclose()

    dead = AutoPipeline(async_redis_client(stack.settings.model_copy(
        update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"}), socket_connect_timeout=1))
    replies = await asyncio.gather(*(dead.execute("GET", "x") for _ in range(3)), return_exceptions=True)
    assert all(isinstance(r, RedisConnectionError) for r in replies), replies
    await dead.redis.aclose()
