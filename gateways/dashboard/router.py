"""The live web dashboard: static page + assets, and the one bit of server config it needs.

Mounted by the API gateway (port 8000): `GET /` and `GET /dashboard` redirect to
`/dashboard/` (the page), `GET /dashboard/config.json` tells the page where the WebSocket
gateway listens (it runs on its own port), `GET /dashboard/static/...` serves the page's
modules and the vendored charting library (no CDN: nothing outside this process is fetched).
The page itself talks to `/api/...` with the user's bearer token; these routes need none.
"""
from __future__ import annotations

import mimetypes
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, RedirectResponse
from pydantic import BaseModel, Field

from deltastream.settings import Settings

STATIC = Path(__file__).resolve().parent / "static"
# The page's own origin plus the socket gateway (another port: ws:/wss: in connect-src).
CSP = ("default-src 'self'; connect-src 'self' ws: wss:; img-src 'self' data:; "
       "style-src 'self' 'unsafe-inline'; script-src 'self'; object-src 'none'; base-uri 'none'; "
       "frame-ancestors 'none'")
_TYPES = {".mjs": "text/javascript", ".js": "text/javascript", ".css": "text/css",
          ".html": "text/html", ".svg": "image/svg+xml", ".json": "application/json"}


class DashboardConfig(BaseModel):
    api_prefix: str = Field(description="prefix of the REST routes on this origin")
    socket_url: str | None = Field(description="WebSocket URL to use as is; null: build it from "
                                               "the page's host, socket_port and socket_path")
    socket_port: int
    socket_path: str
    products: list[str] = Field(description="configured products (the page also asks /api/data/products)")


def _static_file(rel: str) -> Path:
    """`rel` inside the static dir (404 for anything else, `..` included)."""
    path = (STATIC / rel).resolve()
    if not path.is_relative_to(STATIC) or not path.is_file():
        raise HTTPException(404, f"no dashboard asset {rel!r}")
    return path


def dashboard_router(settings: Settings, api_prefix: str = "/api") -> APIRouter:
    router = APIRouter(tags=["dashboard"])
    config = DashboardConfig(api_prefix=api_prefix, socket_url=settings.dashboard_socket_url,
                             socket_port=settings.socket_port, socket_path="/ws",
                             products=list(settings.products))

    @router.get("/", include_in_schema=False)
    @router.get("/dashboard", include_in_schema=False)
    def to_dashboard() -> RedirectResponse:
        return RedirectResponse("/dashboard/", status_code=307)

    @router.get("/dashboard/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", media_type="text/html",
                            headers={"Cache-Control": "no-cache", "Content-Security-Policy": CSP})

    @router.get("/dashboard/config.json", response_model=DashboardConfig)
    def dashboard_config() -> DashboardConfig:
        """Where the dashboard page finds the REST routes and the WebSocket gateway."""
        return config

    @router.get("/dashboard/static/{rel:path}", include_in_schema=False)
    def asset(rel: str) -> FileResponse:
        path = _static_file(rel)
        media = _TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        # Vendored files never change under a name that carries their version; ours may.
        cache = "public, max-age=86400" if rel.startswith("vendor/") else "no-cache"
        return FileResponse(path, media_type=media, headers={"Cache-Control": cache})

    return router
