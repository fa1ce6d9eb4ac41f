"""The storage service on its own (port 8003): `deltastream serve storage`."""
from __future__ import annotations

from fastapi import FastAPI

from deltastream.settings import Settings, get_settings
from gateways.common.service import service_app, with_jwt_secret
from gateways.storage.router import storage_router


def create_app(settings: Settings | None = None) -> FastAPI:
    return service_app("storage", "DeltaStream storage", with_jwt_secret(settings or get_settings()),
                       [storage_router()])
