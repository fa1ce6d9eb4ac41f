"""Create DeltaStream's topics from the registry in `schemas.topics` (idempotent)."""
from __future__ import annotations

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from deltastream.clients import admin_config
from deltastream.settings import Settings
from schemas.topics import topic_specs


def ensure_topics(settings: Settings, prefix: str | None = None, timeout: float = 15.0) -> list[str]:
    """Create every registered topic that does not exist yet; return the names created."""
    admin = AdminClient(admin_config(settings))
    specs = topic_specs(settings.topic_prefix if prefix is None else prefix)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=1 if settings.embedded_kafka else -1,
                 config=dict(s.config))
        for s in specs if s.name not in existing
    ]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, request_timeout=timeout).items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as exc:
            # Another process (a second worker, the fixture) created it first: fine.
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
