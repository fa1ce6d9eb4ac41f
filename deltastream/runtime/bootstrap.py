"""What every pipeline process does first: wait for its servers, make sure topics exist."""
from __future__ import annotations

import logging

from deltastream.runtime.probes import wait_ready
from deltastream.settings import Settings

log = logging.getLogger(__name__)


def wait_for_stack(settings: Settings, needs: tuple[str, ...] = ("kafka",),
                   timeout: float = 60.0, create_topics: bool = True) -> None:
    """Block until the named servers answer (and the topics exist when Kafka is needed)."""
    wait_ready(settings, needs, timeout=timeout)
    if create_topics and "kafka" in needs:
        from deltastream.runtime.topics import ensure_topics

        created = ensure_topics(settings)
        if created:
            log.info("created topics: %s", ", ".join(created))
