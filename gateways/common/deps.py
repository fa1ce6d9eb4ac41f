"""What the service routers depend on: settings, MongoDB, Redis, the caller.

One `Resources` per app, opened by the app's lifespan and kept on `app.state`; a router
mounted in the API gateway uses the gateway's. Clients are created without connecting, so
a service starts while MongoDB or Redis is down and answers 503 until they are back.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Annotated, Any, AsyncIterator, Callable

import httpx
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pymongo import MongoClient
from pymongo.database import Database
from redis import Redis
from redis.asyncio import Redis as AsyncRedis

from deltastream.clients import async_redis_client, mongo_client, redis_client
from deltastream.settings import Settings
from gateways.common.batching import AutoPipeline
from gateways.common.ratelimit import RateLimiter
from gateways.common.tokens import TokenCache, TokenClaims, TokenError, WrongTokenType

# Short timeouts: a request should fail fast with 503, not hang on a dead store.
_MONGO_OPTS = {"serverSelectionTimeoutMS": 2000, "connectTimeoutMS": 2000, "socketTimeoutMS": 10_000,
               "maxPoolSize": 64}
_REDIS_OPTS = {"socket_connect_timeout": 1, "socket_timeout": 2}


def with_jwt_secret(settings: Settings) -> Settings:
    """Settings with the JWT secret resolved once (else it is read from disk per request)."""
    return settings if settings.jwt_secret else settings.model_copy(
        update={"jwt_secret": settings.resolved_jwt_secret()})


@dataclass
class Resources:
    settings: Settings
    namespace: str  # the app's name: rate-limit budgets and metrics are kept per app kind
    mongo: MongoClient
    redis: Redis
    aredis: AsyncRedis
    batch: AutoPipeline  # `aredis`, with the hot commands of concurrent requests pipelined
    limiter: RateLimiter
    tokens: TokenCache  # verified access tokens until they expire
    http: httpx.AsyncClient | None = None  # to separately deployed services
    extras: dict[str, Any] = field(default_factory=dict)  # per-service objects (e.g. Loki forwarder)

    @property
    def db(self) -> Database:
        return self.mongo[self.settings.mongo_db]

    @classmethod
    def open(cls, settings: Settings, namespace: str, http: bool = False) -> "Resources":
        aredis = async_redis_client(settings, **_REDIS_OPTS)
        batch = AutoPipeline(aredis)
        return cls(settings, namespace, mongo_client(settings, **_MONGO_OPTS),
                   redis_client(settings, **_REDIS_OPTS), aredis, batch,
                   RateLimiter.from_settings(settings, namespace, batch), TokenCache(settings),
                   httpx.AsyncClient(timeout=settings.upstream_timeout_seconds) if http else None)

    async def aclose(self) -> None:
        for extra in self.extras.values():
            close = getattr(extra, "close", None)
            if close is not None:
                close()
        if self.http is not None:
            await self.http.aclose()
        await self.aredis.aclose()
        self.redis.close()
        self.mongo.close()


def lifespan(settings: Settings, namespace: str, http: bool = False,
             on_start: Callable[[Resources], None] | None = None):
    """A FastAPI lifespan that opens the app's Resources and closes them on shutdown."""
    @contextlib.asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        resources = Resources.open(settings, namespace, http)
        app.state.resources = resources
        if on_start is not None:
            on_start(resources)
        try:
            yield
        finally:
            await resources.aclose()
    return run


# Dependencies are `async def` although they do not await: FastAPI runs a plain `def`
# dependency in the threadpool, a hop that costs more than the whole lookup.
async def get_resources(request: Request) -> Resources:
    return request.app.state.resources


ResourcesDep = Annotated[Resources, Depends(get_resources)]


async def get_db(resources: ResourcesDep) -> Database:
    return resources.db


async def get_redis(resources: ResourcesDep) -> Redis:
    return resources.redis


DbDep = Annotated[Database, Depends(get_db)]
RedisDep = Annotated[Redis, Depends(get_redis)]

_bearer = HTTPBearer(auto_error=False, description="access token from POST /auth/login")


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


async def rate_limited_ip(request: Request, resources: ResourcesDep) -> None:
    """Per-IP budget only (the auth routes: no user yet)."""
    await resources.limiter.check(client_ip(request))


async def current_user(request: Request, resources: ResourcesDep,
                       credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
                       ) -> TokenClaims:
    """The caller of a data route: a valid access token (401/403 otherwise), within budget (429)."""
    try:
        claims = resources.tokens.decode(credentials.credentials if credentials else None, "access")
    except WrongTokenType as exc:
        raise HTTPException(403, str(exc)) from None
    except TokenError as exc:
        raise HTTPException(401, str(exc), headers={"WWW-Authenticate": "Bearer"}) from None
    await resources.limiter.check(client_ip(request), claims.sub)
    return claims


CurrentUser = Annotated[TokenClaims, Depends(current_user)]
