"""The app factory every DeltaStream HTTP service shares: lifespan-managed clients, request
ids and metrics, CORS, error handlers, `/health` and `/metrics`."""
from __future__ import annotations

from typing import Iterable

from fastapi import APIRouter, FastAPI
from fastapi.middleware.cors import CORSMiddleware

from deltastream.settings import Settings
from gateways.common.deps import lifespan, with_jwt_secret
from gateways.common.errors import install_error_handlers
from gateways.common.health import health_router
from gateways.common.observability import RequestContext, metrics_router


def service_app(name: str, title: str, settings: Settings, routers: Iterable[APIRouter],
                prefix: str = "", http: bool = False) -> FastAPI:
    """A FastAPI app serving `routers` under `prefix`; `settings` must have its JWT secret
    resolved (`with_jwt_secret`) so that every router sees the same one."""
    # FastAPI's native OpenTelemetry looks up the global providers on every request; off
    # unless asked for (the services' metrics are the Prometheus ones of `observability`).
    otel = settings.http_otel
    app = FastAPI(title=title, version="0.1.0", lifespan=lifespan(settings, name, http),
                  telemetry={"tracing": otel, "metrics": otel, "logs": otel})
    app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["*"],
                       allow_headers=["*"], expose_headers=["X-Request-ID", "Retry-After"])
    app.add_middleware(RequestContext, service=name)  # outermost: sees every response
    install_error_handlers(app)
    app.include_router(health_router(name))
    app.include_router(metrics_router())
    for router in routers:
        app.include_router(router, prefix=prefix)
    return app


__all__ = ["service_app", "with_jwt_secret"]
