"""Run one DeltaStream HTTP service under uvicorn, on its configured port."""
from __future__ import annotations

from typing import Callable

import uvicorn
from fastapi import FastAPI

from deltastream.settings import Settings


def _api(settings: Settings) -> FastAPI:
    from gateways.api.app import create_app

    return create_app(settings)


def _auth(settings: Settings) -> FastAPI:
    from gateways.auth.app import create_app

    return create_app(settings)


def _storage(settings: Settings) -> FastAPI:
    from gateways.storage.app import create_app

    return create_app(settings)


def _analytics(settings: Settings) -> FastAPI:
    from gateways.analytics.app import create_app

    return create_app(settings)


def _logs(settings: Settings) -> FastAPI:
    from gateways.logs.app import create_app

    return create_app(settings)


def _ai(settings: Settings) -> FastAPI:
    from gateways.ai.app import create_app

    return create_app(settings)


# service name → (app factory, settings field holding its port)
SERVICES: dict[str, tuple[Callable[[Settings], FastAPI], str]] = {
    "api": (_api, "api_port"),
    "auth": (_auth, "auth_port"),
    "storage": (_storage, "storage_port"),
    "analytics": (_analytics, "analytics_port"),
    "logs": (_logs, "logs_port"),
    "ai": (_ai, "ai_port"),
}


def _socket(settings: Settings) -> None:
    from gateways.socket.server import run

    run(settings)  # the `websockets` asyncio server, not an ASGI app: /ws, /health, /stats


# services that run their own server rather than a FastAPI app under uvicorn
RUNNERS: dict[str, tuple[Callable[[Settings], None], str]] = {
    "socket": (_socket, "socket_port"),
}


def serve(name: str, settings: Settings) -> None:
    if name in RUNNERS:
        RUNNERS[name][0](settings)
        return
    factory, port_field = SERVICES[name]
    # uvicorn handles SIGTERM: stops accepting, finishes in-flight requests, runs lifespan shutdown.
    uvicorn.run(factory(settings), host=settings.host, port=getattr(settings, port_field),
                log_level=settings.log_level.lower(), access_log=False)
