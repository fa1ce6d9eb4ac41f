"""The log service on its own (port 8005): `deltastream serve logs`."""
from __future__ import annotations

from fastapi import FastAPI

from deltastream.settings import Settings, get_settings
from gateways.common.service import service_app, with_jwt_secret
from gateways.logs.router import logs_router


def create_app(settings: Settings | None = None) -> FastAPI:
    return service_app("logs", "DeltaStream logs", with_jwt_secret(settings or get_settings()),
                       [logs_router()])
