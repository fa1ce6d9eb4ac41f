"""Ship the logs of every DeltaStream process as structured JSON to Kafka topic
`deltastream.logs` (the MongoDB sink stores them in `logs`), and to Loki when
DELTASTREAM_LOKI_URL is set.

`install_log_shipping(settings, service)` is the hook the CLI calls when a long-running
process starts. The handler only builds a small dict and puts it on a bounded queue; a
daemon thread produces to Kafka. When the broker is slow or gone, records are dropped (and
counted), never waited for; the producer's own errors are swallowed. Records of the Kafka
client itself are not shipped (that could loop).
"""
from __future__ import annotations

import atexit
import datetime as dt
import logging
import queue
import threading
from typing import Any

from deltastream.settings import Settings
from schemas.codec import encode_dict, headers
from schemas.records import LogRecord, iso_z
from schemas.topics import DELTASTREAM_LOGS

_STD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName"}
_SKIP_LOGGERS = ("confluent_kafka", "kafka", "aiokafka", "httpx", "httpcore", "deltastream.gateways.loki")


def to_log_dict(record: logging.LogRecord, service: str) -> dict[str, Any]:
    """A `LogRecord` (schemas) as a dict: level, logger, message, extra fields, exception text."""
    extra = {k: v if isinstance(v, (str, int, float, bool, type(None))) else repr(v)
             for k, v in vars(record).items() if k not in _STD_ATTRS and not k.startswith("_")}
    if record.exc_info:
        extra["exception"] = logging.Formatter().formatException(record.exc_info)
    data = {"timestamp": iso_z(dt.datetime.fromtimestamp(record.created, dt.timezone.utc)),
            "service": service, "level": record.levelname, "logger": record.name,
            "message": record.getMessage(), "extra": extra}
    data["event_id"] = LogRecord.default_event_id(data) + f":{record.process}:{record.relativeCreated:.3f}"
    return data


class KafkaLogHandler(logging.Handler):
    def __init__(self, settings: Settings, service: str, level: int = logging.INFO,
                 max_queue: int = 10_000) -> None:
        super().__init__(level)
        self.settings, self.service = settings, service
        self.topic = settings.topic(DELTASTREAM_LOGS)
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(max_queue)
        self.dropped = self.sent = 0
        self._thread = threading.Thread(target=self._run, name="log-shipper", daemon=True)
        self._thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SKIP_LOGGERS) or threading.current_thread() is self._thread:
            return
        try:
            self.queue.put_nowait(to_log_dict(record, self.service))
        except queue.Full:
            self.dropped += 1
        except Exception:  # noqa: BLE001 - a log call must never fail because of shipping
            self.dropped += 1

    def _run(self) -> None:
        from confluent_kafka import KafkaException, Producer

        from deltastream.clients import producer_config

        # Short delivery timeout and a small buffer: old logs are not worth waiting for.
        producer = Producer(producer_config(self.settings, batched=True, **{
            "client.id": f"deltastream-logs-{self.service}", "message.timeout.ms": 15_000,
            "queue.buffering.max.messages": 20_000, "enable.idempotence": False,
            "logger": logging.getLogger("confluent_kafka.logs")}))
        hdrs = headers(LogRecord.SCHEMA)
        while True:
            item = self.queue.get()
            if item is None:
                break
            try:
                producer.produce(self.topic, encode_dict(item), self.service, headers=hdrs)
                self.sent += 1
            except (BufferError, KafkaException, TypeError, ValueError):
                self.dropped += 1
            producer.poll(0)
        producer.flush(2)

    def close(self) -> None:
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(3)
        super().close()


class LokiLogHandler(logging.Handler):
    def __init__(self, url: str, service: str, level: int = logging.INFO) -> None:
        from gateways.logs.loki import LokiForwarder

        super().__init__(level)
        self.service = service
        self.forwarder = LokiForwarder(url)

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(_SKIP_LOGGERS):
            return
        try:
            self.forwarder.submit(to_log_dict(record, self.service))
        except Exception:  # noqa: BLE001
            pass

    def close(self) -> None:
        self.forwarder.close()
        super().close()


def install_log_shipping(settings: Settings, service: str) -> list[logging.Handler]:
    """Attach the shipping handlers to the root logger (once per process); returns them."""
    level_name = settings.log_ship_level.strip().upper()
    if not level_name:
        return []
    level = logging.getLevelName(level_name)
    if not isinstance(level, int):
        level = logging.INFO
    root = logging.getLogger()
    if any(isinstance(h, (KafkaLogHandler, LokiLogHandler)) for h in root.handlers):
        return []
    handlers: list[logging.Handler] = [KafkaLogHandler(settings, service, level)]
    if settings.loki_url:
        handlers.append(LokiLogHandler(settings.loki_url, service, level))
    for handler in handlers:
        root.addHandler(handler)
        atexit.register(handler.close)
    return handlers
