"""The auth service on its own (port 8001): `deltastream serve auth`."""
from __future__ import annotations

from fastapi import FastAPI

from deltastream.settings import Settings, get_settings
from gateways.auth.router import auth_router
from gateways.common.service import service_app, with_jwt_secret


def create_app(settings: Settings | None = None) -> FastAPI:
    return service_app("auth", "DeltaStream auth", with_jwt_secret(settings or get_settings()),
                       [auth_router()])
