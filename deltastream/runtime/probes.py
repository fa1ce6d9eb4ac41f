"""Readiness probes: does each server answer on its own protocol?

Used by `deltastream up` (wait before starting the pipeline), `deltastream status`, the
pipeline processes themselves (wait for their dependencies) and the test fixtures.
"""
from __future__ import annotations

import socket
import time
from dataclasses import dataclass
from typing import Callable

from deltastream.clients import admin_config, mongo_client, redis_client
from deltastream.settings import Settings


@dataclass(frozen=True)
class ProbeResult:
    component: str
    address: str
    ok: bool
    detail: str = ""


def probe_kafka(settings: Settings, timeout: float = 3.0) -> ProbeResult:
    from confluent_kafka.admin import AdminClient

    addr = settings.kafka_servers
    try:
        # librdkafka logs connection failures to stderr by itself; keep probes quiet.
        admin = AdminClient(admin_config(settings) | {"log_level": 0})
        meta = admin.list_topics(timeout=timeout)
        return ProbeResult("kafka", addr, True, f"{len(meta.brokers)} broker(s), {len(meta.topics)} topics")
    except Exception as exc:  # KafkaException carries the reason
        return ProbeResult("kafka", addr, False, _reason(exc))


def probe_mongo(settings: Settings, timeout: float = 3.0) -> ProbeResult:
    addr = settings.mongo_uri
    client = mongo_client(settings, serverSelectionTimeoutMS=int(timeout * 1000))
    try:
        client.admin.command("ping")
        return ProbeResult("mongodb", addr, True, "ping ok")
    except Exception as exc:
        return ProbeResult("mongodb", addr, False, _reason(exc))
    finally:
        client.close()


def probe_redis(settings: Settings, timeout: float = 3.0) -> ProbeResult:
    addr = settings.redis_uri
    client = redis_client(settings, socket_connect_timeout=timeout, socket_timeout=timeout)
    try:
        client.ping()
        return ProbeResult("redis", addr, True, "ping ok")
    except Exception as exc:
        return ProbeResult("redis", addr, False, _reason(exc))
    finally:
        client.close()


def probe_http(name: str, url: str, timeout: float = 2.0) -> ProbeResult:
    import httpx

    try:
        resp = httpx.get(url, timeout=timeout)
        body = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else {}
        ok = resp.status_code == 200 and body.get("status") == "healthy"
        return ProbeResult(name, url, ok, body.get("status", f"HTTP {resp.status_code}"))
    except Exception as exc:
        return ProbeResult(name, url, False, _reason(exc))


STORE_PROBES: dict[str, Callable[[Settings, float], ProbeResult]] = {
    "kafka": probe_kafka,
    "mongodb": probe_mongo,
    "redis": probe_redis,
}


def wait_ready(settings: Settings, components: tuple[str, ...] = ("kafka", "mongodb", "redis"),
               timeout: float = 60.0) -> None:
    """Block until every component answers; raise ``TimeoutError`` naming the laggards."""
    deadline = time.monotonic() + timeout
    pending = list(components)
    last: dict[str, ProbeResult] = {}
    while pending:
        for name in list(pending):
            result = STORE_PROBES[name](settings, 2.0)
            last[name] = result
            if result.ok:
                pending.remove(name)
        if not pending:
            return
        if time.monotonic() > deadline:
            why = "; ".join(f"{n} at {last[n].address}: {last[n].detail}" for n in pending)
            raise TimeoutError(f"not reachable after {timeout:.0f}s: {why}")
        time.sleep(0.3)


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on host:port (or it cannot be bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text.split(" (configured timeouts")[0][:200]
