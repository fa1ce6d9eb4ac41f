"""Run one DeltaStream HTTP service under uvicorn, on its configured port."""
from __future__ import annotations

from typing import Callable

import uvicorn
from fastapi import FastAPI

from deltastream.settings import Settings


def _api(settings: Settings) -> FastAPI:
    from gateways.api.app import create_app

    return create_app(settings)


# service name → (app factory, settings field holding its port)
SERVICES: dict[str, tuple[Callable[[Settings], FastAPI], str]] = {
    "api": (_api, "api_port"),
}


def serve(name: str, settings: Settings) -> None:
    factory, port_field = SERVICES[name]
    # uvicorn handles SIGTERM: stops accepting, finishes in-flight requests, runs lifespan shutdown.
    uvicorn.run(factory(settings), host=settings.host, port=getattr(settings, port_field),
                log_level=settings.log_level.lower(), access_log=False)
