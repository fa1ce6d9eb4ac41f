"""Forward log records to Loki's push API (`POST {DELTASTREAM_LOKI_URL}/loki/api/v1/push`).

Records are queued (bounded; the newest are dropped when Loki falls behind) and a daemon
thread pushes them in batches, one stream per (service, level), with httpx. A failed push
is logged once per minute and dropped: shipping logs must never block or break the caller.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections import defaultdict
from typing import Any

import httpx
import orjson

log = logging.getLogger("deltastream.gateways.loki")
PUSH_PATH = "/loki/api/v1/push"


def _ns(ts: Any) -> str:
    """Nanoseconds since the epoch as Loki wants them (a datetime or an ISO string)."""
    import datetime as dt

    if isinstance(ts, str):
        ts = dt.datetime.fromisoformat(ts.replace("Z", "+00:00"))
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.timezone.utc)
    return str(int(ts.timestamp() * 1_000_000) * 1000)


def push_body(records: list[dict[str, Any]]) -> dict[str, Any]:
    streams: dict[tuple[str, str], list[list[str]]] = defaultdict(list)
    for r in records:
        line = orjson.dumps({"logger": r.get("logger", ""), "message": r.get("message", ""),
                             **({"extra": r["extra"]} if r.get("extra") else {})}).decode()
        streams[(r["service"], r["level"])].append([_ns(r["timestamp"]), line])
    return {"streams": [{"stream": {"service": s, "level": lvl.lower(), "app": "deltastream"},
                         "values": sorted(v)} for (s, lvl), v in streams.items()]}


class LokiForwarder:
    def __init__(self, url: str, batch_size: int = 500, flush_seconds: float = 1.0,
                 max_queue: int = 10_000, timeout: float = 5.0) -> None:
        self.url = url.rstrip("/") + PUSH_PATH
        self.batch_size, self.flush_seconds = batch_size, flush_seconds
        self.queue: queue.Queue[dict[str, Any]] = queue.Queue(max_queue)
        self.dropped = self.pushed = 0
        self._client = httpx.Client(timeout=timeout)
        self._stop = threading.Event()
        self._warned = 0.0
        self._thread = threading.Thread(target=self._run, name="loki-forwarder", daemon=True)
        self._thread.start()

    def submit(self, record: dict[str, Any]) -> None:
        """Queue one record (service, level, timestamp, logger, message, extra); never blocks."""
        try:
            self.queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1

    def _run(self) -> None:
        while not self._stop.is_set() or not self.queue.empty():
            batch: list[dict[str, Any]] = []
            deadline = time.monotonic() + self.flush_seconds
            while len(batch) < self.batch_size:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    break
                try:
                    batch.append(self.queue.get(timeout=timeout))
                except queue.Empty:
                    break
            if batch:
                self._push(batch)

    def _push(self, batch: list[dict[str, Any]]) -> None:
        try:
            response = self._client.post(self.url, content=orjson.dumps(push_body(batch)),
                                         headers={"Content-Type": "application/json"})
            response.raise_for_status()
            self.pushed += len(batch)
        except (httpx.HTTPError, ValueError, KeyError) as exc:
            self.dropped += len(batch)
            if time.monotonic() - self._warned > 60:
                self._warned = time.monotonic()
                log.warning("Loki push to %s failed, %d records dropped: %s", self.url, len(batch), exc)

    def close(self, timeout: float = 3.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
        self._client.close()
