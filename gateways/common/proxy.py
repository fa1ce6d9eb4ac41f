"""Forward a prefix of the API gateway to a separately deployed service (DELTASTREAM_*_URL).

`/api/data/...` → `{storage_url}/data/...`: method, query, body and the end-to-end headers
go through (Authorization included: the service checks the token itself); the request id
and the client address are added. The upstream's answer comes back as it is, except that
an unreachable upstream is 502, one that does not answer in `upstream_timeout_seconds` is
504, and an upstream 500 becomes 502 — each with the reason in `detail`.
"""
from __future__ import annotations

import logging
from typing import Any, Callable

import httpx
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from gateways.common.deps import ResourcesDep, client_ip
from gateways.common.observability import request_id_of

log = logging.getLogger("deltastream.gateways.proxy")

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailers",
               "transfer-encoding", "upgrade", "host", "content-length"}
_RESPONSE_HEADERS = {"content-type", "retry-after", "www-authenticate", "cache-control", "location"}
METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _bad_gateway(service: str, status: int, reason: str) -> JSONResponse:
    return JSONResponse({"detail": f"upstream {service}: {reason}"}, status_code=status)


def proxy_router(service: str, prefix: str, base_url: str,
                 dependencies: list[Callable[..., Any]] = ()) -> APIRouter:
    """Routes `prefix` and `prefix/...` (under the gateway's own prefix) to `base_url + prefix`."""
    router = APIRouter(dependencies=[Depends(d) for d in dependencies])
    base = base_url.rstrip("/")

    async def forward(request: Request, resources: ResourcesDep, path: str = "") -> Response:
        url = f"{base}{prefix}" + (f"/{path}" if path else "")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        headers["x-request-id"] = request_id_of(request.scope) or ""
        forwarded = headers.get("x-forwarded-for")
        headers["x-forwarded-for"] = f"{forwarded}, {client_ip(request)}" if forwarded else client_ip(request)
        timeout = resources.settings.upstream_timeout_seconds
        try:
            upstream = await resources.http.request(request.method, url, params=request.query_params,
                                                    content=await request.body(), headers=headers)
        except httpx.TimeoutException:
            return _bad_gateway(service, 504, f"no answer within {timeout:g} s")
        except httpx.TransportError as exc:
            return _bad_gateway(service, 502, f"unreachable ({type(exc).__name__}: {exc})")
        if upstream.status_code >= 500 and upstream.status_code not in (502, 503, 504):
            log.warning("upstream %s answered %d for %s", service, upstream.status_code, url)
            return _bad_gateway(service, 502, f"failed with HTTP {upstream.status_code}")
        out = {k: v for k, v in upstream.headers.items() if k.lower() in _RESPONSE_HEADERS}
        return Response(upstream.content, status_code=upstream.status_code, headers=out)

    router.add_api_route(prefix, forward, methods=METHODS, include_in_schema=False)
    router.add_api_route(prefix + "/{path:path}", forward, methods=METHODS, include_in_schema=False)
    return router
