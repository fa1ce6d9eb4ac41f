"""Run one DeltaStream HTTP service under uvicorn, on its configured port."""
from __future__ import annotations

import gc
import importlib
import os
from importlib.util import find_spec
from typing import Callable

import uvicorn
from fastapi import FastAPI

from deltastream.settings import Settings


def _factory(service: str) -> Callable[[Settings], FastAPI]:
    """`gateways.<service>.app.create_app`, imported only when that service is run."""
    def create(settings: Settings) -> FastAPI:
        return importlib.import_module(f"gateways.{service}.app").create_app(settings)
    return create


# service name → (app factory, settings field holding its port)
SERVICES: dict[str, tuple[Callable[[Settings], FastAPI], str]] = {
    name: (_factory(name), f"{name}_port") for name in ("api", "auth", "storage", "analytics", "logs", "ai")
}


def _socket(settings: Settings) -> None:
    from gateways.socket.server import run

    run(settings)  # the `websockets` asyncio server, not an ASGI app: /ws, /health, /stats


# services that run their own server rather than a FastAPI app under uvicorn
RUNNERS: dict[str, tuple[Callable[[Settings], None], str]] = {
    "socket": (_socket, "socket_port"),
}


_WORKER_SERVICE = "DELTASTREAM_SERVE_WORKER_SERVICE"  # which service a worker process builds


def worker_app() -> FastAPI:
    """The app of one uvicorn worker process (`http_workers` > 1): settings from the environment,
    as the parent read them."""
    from deltastream.cli import load_settings, setup_logging

    name = os.environ[_WORKER_SERVICE]
    settings = load_settings()
    setup_logging(settings, name)
    app = SERVICES[name][0](settings)
    gc.collect()
    gc.freeze()  # as in `serve`
    return app


def serve(name: str, settings: Settings) -> None:
    if name in RUNNERS:
        RUNNERS[name][0](settings)
        return
    factory, port_field = SERVICES[name]
    # uvloop + httptools (uvicorn[standard]; not on Windows) named explicitly: the C event loop
    # and HTTP parser, never a silent fallback to the pure-Python ones where they exist.
    # uvicorn handles SIGTERM: stops accepting, finishes in-flight requests, runs lifespan shutdown.
    options = {"host": settings.host, "port": getattr(settings, port_field),
               "loop": "uvloop" if find_spec("uvloop") else "auto",
               "http": "httptools" if find_spec("httptools") else "auto",
               "log_level": settings.log_level.lower(), "access_log": False}
    if settings.http_workers > 1:
        # Several processes on one port (the kernel spreads connections): each opens its own
        # clients; rate-limit budgets stay shared through Redis, metrics are per process.
        os.environ[_WORKER_SERVICE] = name
        uvicorn.run("gateways.serve:worker_app", factory=True, workers=settings.http_workers, **options)
    else:
        app = factory(settings)
        # What is alive now (modules, routes, models) lives as long as the process: out of
        # the collector's way, so its full collections stay short (p99 latency).
        gc.collect()
        gc.freeze()
        uvicorn.run(app, **options)
