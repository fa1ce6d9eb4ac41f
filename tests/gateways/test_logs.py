"""The log service: batch ingest, queries by service / level / since / text, logs that
processes shipped through Kafka and the MongoDB sink, and forwarding to Loki's push API."""
from __future__ import annotations

import datetime as dt
import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from fastapi.testclient import TestClient

from gateways.api.app import create_app
from schemas.records import iso_z
from tests.gateways.dataset import SHIPPED_MARKER

pytestmark = pytest.mark.integration


# Recent times: `logs` has a TTL (7 days), so older records may vanish at once.
NOW = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def ts(seconds: int) -> str:
    return iso_z(NOW + dt.timedelta(seconds=seconds))


def batch(service: str) -> list[dict]:
    return [
        {"service": service, "level": "info", "message": "chain published", "logger": "feed",
         "timestamp": ts(-60)},
        {"service": service, "level": "WARNING", "message": "Broker slow: 120 ms", "logger": "feed",
         "timestamp": ts(-59), "extra": {"latency_ms": 120}},
        {"service": service, "level": "ERROR", "message": "write failed, retrying", "logger": "sink",
         "timestamp": ts(-58)},
    ]


def test_ingest_and_query(client, auth):
    service = f"svc-{uuid.uuid4().hex[:6]}"
    posted = client.post("/api/logs", json={"logs": batch(service)}, headers=auth)
    assert posted.status_code == 202 and posted.json()["accepted"] == 3
    again = client.post("/api/logs", json={"logs": batch(service)}, headers=auth)  # idempotent
    assert again.json()["event_ids"] == posted.json()["event_ids"]

    every = client.get("/api/logs", params={"service": service}, headers=auth).json()
    assert [r["message"] for r in every["logs"]] == ["write failed, retrying", "Broker slow: 120 ms",
                                                      "chain published"]  # newest first, no duplicates
    assert every["logs"][1]["extra"] == {"latency_ms": 120} and every["logs"][2]["level"] == "INFO"
    warn_up = client.get("/api/logs", params={"service": service, "level": "WARNING"}, headers=auth).json()
    assert [r["level"] for r in warn_up["logs"]] == ["ERROR", "WARNING"]
    since = client.get("/api/logs", params={"service": service, "since": ts(-59)}, headers=auth).json()
    assert since["count"] == 2
    text = client.get("/api/logs", params={"service": service, "q": "broker SLOW"}, headers=auth).json()
    assert [r["message"] for r in text["logs"]] == ["Broker slow: 120 ms"]
    assert client.get("/api/logs", params={"service": service, "limit": 1}, headers=auth).json()["count"] == 1
    assert client.get("/api/logs", params={"q": "(unbalanced["}, headers=auth).status_code == 200


def test_ingest_rejects_bad_batches(client, auth):
    assert client.post("/api/logs", json={"logs": []}, headers=auth).status_code == 422
    bad_level = client.post("/api/logs", json={"logs": [{"service": "s", "level": "LOUD", "message": "m"}]},
                            headers=auth)
    assert bad_level.status_code == 422 and "level" in str(bad_level.json()["detail"])
    assert client.post("/api/logs", json={"logs": [{"service": "s", "message": "m"}]}).status_code == 401


def test_process_logs_shipped_through_kafka_are_queryable(client, auth):
    body = client.get("/api/logs", params={"service": "gateway-tests", "q": SHIPPED_MARKER}, headers=auth).json()
    assert body["count"] == 1
    [record] = body["logs"]
    assert record["level"] == "WARNING" and record["logger"] == "tests.gateways"


class FakeLoki:
    """Loki's push endpoint, recording what it receives."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                received.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()


def test_ingested_logs_are_forwarded_to_loki(dataset, auth):
    loki = FakeLoki()
    try:
        with TestClient(create_app(dataset.settings.model_copy(update={"loki_url": loki.url}))) as client:
            service = f"loki-{uuid.uuid4().hex[:6]}"
            assert client.post("/api/logs", json={"logs": batch(service)}, headers=auth).status_code == 202
            deadline = time.monotonic() + 10
            while not loki.received and time.monotonic() < deadline:
                time.sleep(0.1)
        path, body = loki.received[0]
        assert path == "/loki/api/v1/push"
        streams = {(s["stream"]["service"], s["stream"]["level"]): s["values"] for s in body["streams"]}
        assert set(streams) == {(service, "info"), (service, "warning"), (service, "error")}
        [[ns, line]] = streams[(service, "warning")]
        assert ns == str(int((NOW.timestamp() - 59)) * 10**9) and json.loads(line)["message"] == "Broker slow: 120 ms"
    finally:
        loki.close()
