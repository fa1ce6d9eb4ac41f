"""`deltastream status`: each server and service, up or down."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from deltastream.runtime.pipeline import pipeline_processes
from deltastream.runtime.probes import STORE_PROBES, ProbeResult, probe_http
from deltastream.settings import Settings

# HTTP services and the settings field of their port.
HTTP_SERVICES = {"api": "api_port", "auth": "auth_port", "socket": "socket_port",
                 "storage": "storage_port", "analytics": "analytics_port",
                 "logs": "logs_port", "ai": "ai_port"}


def _service_url(settings: Settings, name: str) -> str:
    external = getattr(settings, f"{name}_url", None)
    if external:
        return external.rstrip("/") + "/health"
    host = "127.0.0.1" if settings.host == "0.0.0.0" else settings.host
    return f"http://{host}:{getattr(settings, HTTP_SERVICES[name])}/health"


def collect_status(settings: Settings, timeout: float = 2.0,
                   services: tuple[str, ...] | None = None) -> list[ProbeResult]:
    if services is None:  # the services `up` runs
        services = tuple(p.name for p in pipeline_processes(settings) if p.name in HTTP_SERVICES)
    with ThreadPoolExecutor(max_workers=8) as pool:
        stores = [pool.submit(probe, settings, timeout) for probe in STORE_PROBES.values()]
        http = [pool.submit(probe_http, name, _service_url(settings, name), timeout) for name in services]
        return [f.result() for f in stores + http]


def render_status(results: list[ProbeResult]) -> str:
    width = max(len(r.component) for r in results)
    return "\n".join(
        f"{r.component:<{width}}  {'up' if r.ok else 'DOWN':<4}  {r.address}  {r.detail}" for r in results
    )
