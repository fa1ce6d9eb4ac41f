"""The API gateway (port 8000): every service under `/api`, mounted in this process or,
when `DELTASTREAM_<SERVICE>_URL` is set, proxied to that deployment.

Mounted or proxied, the data routes need an access token here (401/403) and spend the
caller's rate-limit budget here (429); `/docs` and `/openapi.json` describe every route,
the proxied ones included (from the same routers).
"""
from __future__ import annotations

from typing import Callable

from fastapi import APIRouter, FastAPI
from fastapi.openapi.utils import get_openapi

from deltastream.settings import Settings, get_settings
from gateways.ai.router import ai_router
from gateways.analytics.router import analytics_router
from gateways.auth.router import auth_router
from gateways.common.deps import current_user, rate_limited_ip
from gateways.common.proxy import proxy_router
from gateways.common.service import service_app, with_jwt_secret
from gateways.dashboard import dashboard_router
from gateways.logs.router import logs_router
from gateways.storage.router import storage_router

PREFIX = "/api"

# service → (router factory, path prefix, settings field of its URL, gateway-side check)
SERVICES: dict[str, tuple[Callable[[], APIRouter], str, str, Callable]] = {
    "auth": (auth_router, "/auth", "auth_url", rate_limited_ip),
    "storage": (storage_router, "/data", "storage_url", current_user),
    "analytics": (analytics_router, "/analytics", "analytics_url", current_user),
    "logs": (logs_router, "/logs", "logs_url", current_user),
    "ai": (ai_router, "/ai", "ai_url", current_user),
}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = with_jwt_secret(settings or get_settings())
    mounted, proxied, documented = [], [], []
    for name, (factory, path, url_field, check) in SERVICES.items():
        url = getattr(settings, url_field)
        if url:
            proxied.append(proxy_router(name, path, url, [check]))
            documented.append(factory())
        else:
            mounted.append(factory())
    app = service_app("api", "DeltaStream API gateway", settings, mounted, prefix=PREFIX, http=bool(proxied))
    for router in proxied:
        app.include_router(router, prefix=PREFIX)
    app.include_router(dashboard_router(settings, PREFIX))  # the web page: `/` → `/dashboard/`
    if documented:
        _document(app, documented)
    return app


def _document(app: FastAPI, routers: list[APIRouter]) -> None:
    """OpenAPI of the app plus the proxied services' routes (served upstream, same models)."""
    docs = APIRouter(prefix=PREFIX)
    for router in routers:
        docs.include_router(router)

    def openapi() -> dict:
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(title=app.title, version=app.version,
                                             routes=[*app.routes, *docs.routes])
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
