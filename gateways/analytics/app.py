"""The analytics service on its own (port 8004): `deltastream serve analytics`."""
from __future__ import annotations

from fastapi import FastAPI

from deltastream.settings import Settings, get_settings
from gateways.analytics.router import analytics_router
from gateways.common.service import service_app, with_jwt_secret


def create_app(settings: Settings | None = None) -> FastAPI:
    return service_app("analytics", "DeltaStream analytics", with_jwt_secret(settings or get_settings()),
                       [analytics_router()])
