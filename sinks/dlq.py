"""The dead-letter queue: messages a service cannot process, with the reason, on
`deltastream.dlq` (record `DlqRecord`: original bytes base64, topic/partition/offset).

`add` collects, `send` produces and waits until the broker acknowledged every record (the
caller commits the source offsets only after that). A DLQ record's event_id is
`{service}:{topic}:{partition}:{offset}`, so a message dead-lettered twice (a redelivered
batch) is stored once.
"""
from __future__ import annotations

import logging

from confluent_kafka import KafkaError, Producer

from deltastream.clients import producer_config
from deltastream.settings import Settings
from schemas.codec import encode, headers
from schemas.records import DlqRecord
from schemas.topics import DELTASTREAM_DLQ

log = logging.getLogger(__name__)
_HEADERS = headers(DlqRecord.SCHEMA)


class DlqError(RuntimeError):
    """Some DLQ records were not acknowledged (broker down or slow): retry `send`."""


class DeadLetters:
    def __init__(self, settings: Settings, service: str) -> None:
        self.service = service
        self.topic = settings.topic(DELTASTREAM_DLQ)
        self._settings = settings
        self._producer: Producer | None = None
        self._pending: list[tuple[bytes, bytes]] = []  # (key, value) not acknowledged yet
        self.sent = 0

    def add(self, *, topic: str, partition: int, offset: int, key: bytes | None,
            value: bytes | None, reason: str, error_type: str) -> DlqRecord:
        record = DlqRecord.from_message(topic=topic, partition=partition, offset=offset, key=key,
                                        value=value, reason=reason, error_type=error_type,
                                        service=self.service)
        self._pending.append((record.key().encode(), encode(record)))
        log.warning("dead-lettered %s[%d]@%d: %s", topic, partition, offset, reason)
        return record

    def __len__(self) -> int:
        return len(self._pending)

    def send(self, timeout: float = 30.0) -> None:
        """Produce what was added and wait for the acknowledgements; DlqError if some fail."""
        if not self._pending:
            return
        if self._producer is None:
            self._producer = Producer(producer_config(self._settings, **{
                "client.id": f"deltastream-{self.service}-dlq"}))
        failed: list[tuple[bytes, bytes]] = []
        errors: list[KafkaError] = []

        def on_delivery(err: KafkaError | None, msg) -> None:
            if err is not None:
                failed.append((msg.key(), msg.value()))
                errors.append(err)

        for key, value in self._pending:
            while True:
                try:
                    self._producer.produce(self.topic, value, key, headers=_HEADERS,
                                           on_delivery=on_delivery)
                    break
                except BufferError:
                    self._producer.poll(0.1)
        left = self._producer.flush(timeout)
        if left or failed:
            # Produce the whole lot again next time: the DLQ records' ids make a repeat harmless.
            raise DlqError(f"{left or len(failed)} of {len(self._pending)} DLQ records not "
                           f"acknowledged ({errors[0] if errors else 'timeout'})")
        self.sent += len(self._pending)
        self._pending = []

    def close(self, timeout: float = 5.0) -> None:
        if self._producer is not None:
            self._producer.flush(timeout)
            self._producer = None
