"""`deltastream process`: run one stream-processor worker until SIGTERM / SIGINT.

Start as many as you like with the same settings: they join one consumer group
(`DELTASTREAM_PROCESSOR_APP_ID`) and split the partitions; a restarted worker recovers its
tables from the changelog. SIGTERM finishes the batch in flight, writes pending state,
commits offsets and leaves the group.
"""
from __future__ import annotations

import logging

from deltastream.runtime.bootstrap import wait_for_stack
from deltastream.settings import Settings

log = logging.getLogger("deltastream.processors")


def run_worker(settings: Settings) -> int:
    """Run a worker in this process (blocks; installs its own signal handlers); exit code."""
    import faust

    from stream_processors.app import Pipeline

    wait_for_stack(settings, ("kafka",))
    level = logging.getLevelName(settings.log_level.upper())
    if isinstance(level, int) and level > logging.DEBUG:
        # Faust and aiokafka narrate every start step and table at INFO; keep their warnings.
        for name in ("faust", "mode", "aiokafka", "stream_processors.state"):
            logging.getLogger(name).setLevel(max(level, logging.WARNING))
    pipeline = Pipeline(settings)
    worker = faust.Worker(pipeline.app, loglevel=settings.log_level.upper(), quiet=True,
                          redirect_stdouts=False, override_logging=False)
    log.info("processors %s on %s (topic prefix %r)", settings.processor_app_id,
             settings.kafka_servers, settings.topic_prefix)
    try:
        worker.execute_from_commandline()
    except SystemExit as exc:
        return int(exc.code or 0)
    finally:
        pipeline.close()
    return 0


def main() -> None:  # python -m stream_processors.run (until `deltastream process` is wired)
    import sys

    from deltastream.settings import get_settings

    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sys.exit(run_worker(settings))


if __name__ == "__main__":
    main()
