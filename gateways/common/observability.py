"""Request ids and Prometheus metrics, as one pure ASGI middleware (cheaper than
BaseHTTPMiddleware on every request), plus the `/metrics` route.

`X-Request-ID` is taken from the request when it is a sane token (else a new one is made),
kept in `scope["state"]["request_id"]` for handlers and proxies, and returned on the
response. Metrics are labelled by route template (`/api/data/chain/{product}/{expiry}`),
never by raw path, so their number stays bounded.
"""
from __future__ import annotations

import os
import re
import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

REQUEST_ID = "x-request-id"
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

REQUESTS = Counter("deltastream_http_requests_total", "HTTP requests answered",
                   ["service", "method", "route", "status"])
LATENCY = Histogram("deltastream_http_request_duration_seconds", "HTTP request latency",
                    ["service", "method", "route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


def request_id_of(scope: Scope) -> str | None:
    return scope.get("state", {}).get("request_id")


class RequestContext:
    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service
        # labelled children by (method, route[, status]): `labels()` validates and hashes
        # its arguments on every call; the set is bounded (route templates, not paths)
        self._latency: dict[tuple[str, str], Any] = {}
        self._requests: dict[tuple[str, str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), None)
        # a new id: 32 hex digits, as uuid4().hex but without building a UUID
        rid = given if given and _SAFE_ID.match(given) else os.urandom(16).hex()
        scope.setdefault("state", {})["request_id"] = rid
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                headers.append((b"x-request-id", rid.encode()))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            route = scope.get("route")
            template = getattr(route, "path_format", None) or getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            latency = self._latency.get((method, template))
            if latency is None:
                latency = self._latency[method, template] = LATENCY.labels(self.service, method, template)
            latency.observe(time.perf_counter() - started)
            count = self._requests.get((method, template, status))
            if count is None:
                count = self._requests[method, template, status] = REQUESTS.labels(
                    self.service, method, template, str(status))
            count.inc()


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/metrics", response_class=Response,
                responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}},
                                 "description": "Prometheus text format"}})
    async def metrics() -> Response:  # CPU only: no threadpool hop
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router
