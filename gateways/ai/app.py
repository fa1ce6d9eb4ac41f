"""The AI service on its own (port 8006): `deltastream serve ai`.

Its `/health` reports `degraded` (with each model's state and error) when a model failed to
load; the models start loading in the background at startup (`ai_preload`).
"""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from deltastream.settings import Settings, get_settings
from gateways.ai.engines import models_for
from gateways.ai.models import AiHealth
from gateways.ai.router import ai_router, health_of
from gateways.common.deps import ResourcesDep
from gateways.common.service import service_app, with_jwt_secret


def _paths(route: BaseRoute) -> set[str]:
    # FastAPI >= 0.16x keeps an included router as one route (`original_router`); older
    # versions copy its routes into the app.
    inner = getattr(route, "original_router", None)
    if inner is not None:
        return set().union(*(_paths(r) for r in inner.routes)) if inner.routes else set()
    return {route.path} if isinstance(route, APIRoute) else {"?"}


def _is_shared_health(route: BaseRoute) -> bool:
    return _paths(route) == {"/health"}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = with_jwt_secret(settings or get_settings())
    app = service_app("ai", "DeltaStream AI analyst", settings, [ai_router()])
    # The shared health route always says "healthy"; this service's health depends on its models.
    app.router.routes = [r for r in app.router.routes if not _is_shared_health(r)]

    @app.get("/health", response_model=AiHealth, tags=["health"])
    def health(resources: ResourcesDep) -> AiHealth:
        return health_of(resources)

    if settings.ai_preload:
        models_for(settings).warm()
    return app
