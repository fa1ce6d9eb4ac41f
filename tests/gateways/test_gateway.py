"""Gateway behaviour: bad input as 4xx with a reason, store outages as 503, request ids,
metrics, CORS, the OpenAPI contract, and proxying to a separately deployed service."""
from __future__ import annotations

import re
import socket
import threading

import pytest
from fastapi.testclient import TestClient

from gateways.api.app import create_app
from gateways.storage.app import create_app as create_storage_app
from tests.stack import free_port

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("path, params, status, reason", [
    ("/api/data/expiries/NOPE", {}, 404, "unknown product 'NOPE'"),
    ("/api/data/underlying/NOPE", {}, 404, "unknown product"),
    ("/api/data/options/NOPE20261126C100", {}, 404, "unknown product 'NOPE'"),
    ("/api/data/underlying/NIFTY", {"limit": 0}, 422, "greater than or equal to 1"),
    ("/api/data/underlying/NIFTY", {"limit": 10_001}, 422, "less than or equal to 10000"),
    ("/api/data/underlying/NIFTY", {"start": "yesterday"}, 422, "datetime"),
    ("/api/data/underlying/NIFTY", {"start": "2026-11-24T00:00:00Z", "end": "2026-11-23T00:00:00Z"}, 422,
     "is after end"),
    ("/api/data/underlying/nifty", {}, 422, "pattern"),
    ("/api/data/chain/NIFTY/2026-13-45", {}, 422, "date"),
    ("/api/data/chain/NIFTY/2031-01-02", {}, 404, "no NIFTY chain for expiry 2031-01-02"),
    ("/api/data/options/NIFTY", {}, 422, "pattern"),
    ("/api/analytics/ohlc/NIFTY", {"interval": "2m"}, 422, "'1m', '5m' or '15m'"),
    ("/api/analytics/volatility_surface/NIFTY", {"at": "0001-01-01T00:00:00+05:00"}, 422, "out of range"),
    ("/api/logs", {"level": "LOUD"}, 422, "DEBUG"),
])
def test_bad_input_is_a_4xx_with_a_reason(client, auth, path, params, status, reason):
    response = client.get(path, params=params, headers=auth)
    assert response.status_code == status, response.text
    assert reason in str(response.json()["detail"])


def test_request_ids_metrics_cors_and_docs(client, auth):
    mine = client.get("/api/data/products", headers={**auth, "X-Request-ID": "abc-123"})
    assert mine.headers["X-Request-ID"] == "abc-123"
    made = client.get("/api/data/products", headers={**auth, "X-Request-ID": "bad id with spaces"})
    assert len(made.headers["X-Request-ID"]) == 32 and made.headers["X-Request-ID"] != "bad id with spaces"

    metrics = client.get("/metrics").text
    # labelled by route template (with or without the mount prefix, depending on FastAPI's version)
    assert re.search(r'deltastream_http_requests_total\{method="GET",route="(/api)?/data/products",'
                     r'service="api",status="200"\} [1-9]', metrics), metrics[-2000:]
    assert re.search(r'route="(/api)?/data/chain/\{product\}/\{expiry\}"', metrics)
    assert "/data/chain/NIFTY" not in metrics

    preflight = client.options("/api/data/products", headers={
        "Origin": "https://app.example.com", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert preflight.status_code == 200 and preflight.headers["access-control-allow-origin"] in ("*", "https://app.example.com")

    spec = client.get("/openapi.json").json()
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
            assert "content" in ok and ok["content"], (method, path)
            if path.startswith(("/api/data", "/api/analytics", "/api/logs")):
                assert {"401", "403", "429", "503"} <= op["responses"].keys(), (method, path)
    assert "bearer" in str(spec["components"]["securitySchemes"]).lower()
    assert client.get("/docs").status_code == 200


def test_mongodb_down_is_503_and_redis_down_falls_back(dataset, auth):
    dead_mongo = dataset.settings.model_copy(update={"mongo_url": f"mongodb://127.0.0.1:{free_port()}"})
    with TestClient(create_app(dead_mongo)) as client:
        response = client.get("/api/data/underlying/NIFTY", headers=auth)
        assert response.status_code == 503 and response.json()["detail"].startswith("MongoDB unavailable")
        login = client.post("/api/auth/login", json={"email": "x@example.com", "password": "whatever123"})
        assert login.status_code == 503
        # latest values still come from Redis
        expiry = dataset.expiries("NIFTY")[0]
        assert client.get(f"/api/data/chain/NIFTY/{expiry}", headers=auth).status_code == 200

    dead_redis = dataset.settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})
    with TestClient(create_app(dead_redis)) as client:
        expiry = dataset.expiries("NIFTY")[0]
        chain = client.get(f"/api/data/chain/NIFTY/{expiry}", headers=auth)  # read from MongoDB
        assert chain.status_code == 200 and chain.json()["timestamp"] == "2026-11-23T04:09:50.000000Z"
        assert client.get("/api/analytics/max_pain/NIFTY", headers=auth).json()["expiries"]
        refresh = client.post("/api/auth/refresh", json={"token": "x" * 20})
        assert refresh.status_code == 401  # a bad token is refused before Redis is needed
        creds = {"email": "routes@example.com", "password": "a long enough password"}
        login = client.post("/api/auth/login", json=creds)  # issuing a refresh token needs Redis
        assert login.status_code == 503 and login.json()["detail"].startswith("Redis unavailable")


class Silent:
    """A TCP server that accepts connections and never answers (an upstream that hangs)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


def test_gateway_proxies_to_a_separate_deployment(dataset, auth):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_storage_app(dataset.settings), host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    silent = Silent()
    try:
        while not server.started:
            thread.join(0.05)
        proxied = dataset.settings.model_copy(update={"storage_url": f"http://127.0.0.1:{port}",
                                                      "analytics_url": f"http://127.0.0.1:{free_port()}",
                                                      "logs_url": f"http://127.0.0.1:{silent.port}",
                                                      "upstream_timeout_seconds": 0.5})
        with TestClient(create_app(proxied)) as client:
            expiry = dataset.expiries("AAPL")[0]
            via = client.get(f"/api/data/chain/AAPL/{expiry}", headers={**auth, "X-Request-ID": "via-proxy"})
            assert via.status_code == 200 and via.json()["expiry"] == expiry
            assert via.headers["X-Request-ID"] == "via-proxy"
            history = client.get("/api/data/underlying/AAPL", params={"limit": 3}, headers=auth).json()
            assert history["count"] == 3
            assert client.get("/api/data/expiries/NOPE", headers=auth).status_code == 404  # upstream's answer
            assert client.get("/api/data/products").status_code == 401  # checked at the gateway
            down = client.get("/api/analytics/max_pain/NIFTY", headers=auth)
            assert down.status_code == 502 and "upstream analytics: unreachable" in down.json()["detail"]
            slow = client.get("/api/logs", headers=auth)
            assert slow.status_code == 504 and "no answer within 0.5 s" in slow.json()["detail"]
            paths = client.get("/openapi.json").json()["paths"]
            assert "/api/data/chain/{product}/{expiry}" in paths and "/api/logs" in paths
    finally:
        silent.close()
        server.should_exit = True
        thread.join(10)
