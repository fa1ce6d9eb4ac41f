"""Errors as JSON `{"detail": reason}`: documented per route, and store outages as 503.

A MongoDB or Redis outage must read as "try again later" with the reason, never as a 500;
the handlers here turn the client libraries' connection errors into that.
"""
from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

log = logging.getLogger("deltastream.gateways")


class ErrorResponse(BaseModel):
    detail: str


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI entries for the error statuses a route can answer with."""
    text = {400: "Bad request", 401: "Missing, invalid or expired token", 403: "Wrong token type",
            404: "Not found", 409: "Conflict", 429: "Rate limited (see Retry-After)",
            502: "Upstream service failed", 503: "A store (MongoDB, Redis) is unavailable",
            504: "Upstream service timed out"}
    return {code: {"model": ErrorResponse, "description": text.get(code, "Error")} for code in codes}


# What a data route can answer besides 200 and 422 (validation).
DATA_ERRORS = responses(401, 403, 404, 429, 503)


def _unavailable(store: str):
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        log.warning("%s unavailable during %s %s: %s", store, request.method, request.url.path, exc)
        return JSONResponse({"detail": f"{store} unavailable: {type(exc).__name__}: {exc}"[:500]},
                            status_code=503, headers={"Retry-After": "5"})
    return handler


def install_error_handlers(app: FastAPI) -> None:
    mongo = _unavailable("MongoDB")
    for exc_type in (ConnectionFailure, ExecutionTimeout, WTimeoutError):
        app.add_exception_handler(exc_type, mongo)
    redis = _unavailable("Redis")
    for exc_type in (RedisConnectionError, RedisTimeoutError):
        app.add_exception_handler(exc_type, redis)


def invalid(where: tuple[str, ...], message: str, value: Any = None) -> RequestValidationError:
    """A 422 for input the schema lets through but the route refuses (start after end, ...),
    in the same `{"detail": [{"loc", "msg", "type"}]}` shape as FastAPI's own 422s."""
    return RequestValidationError([{"type": "value_error", "loc": list(where), "msg": message,
                                    "input": None if value is None else str(value)}])
