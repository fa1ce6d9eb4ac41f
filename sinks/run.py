"""Entry points: `deltastream sink mongo|redis`, or `python -m sinks.run mongo|redis`.

Each runs one sink process until SIGTERM / SIGINT: the batch in flight is written and
committed, then the consumer leaves its group. Start several with the same settings to
split the partitions (consumer groups `deltastream-sink-mongo` / `deltastream-sink-redis`
and, for the Redis sink's state lane, `deltastream-sink-redis-state`; after the topic prefix
when one is set: a replay pipeline has groups of its own).
"""
from __future__ import annotations

import contextlib
import gc
import logging
import signal
import sys
import threading
from typing import TYPE_CHECKING, Iterator

from deltastream.runtime.bootstrap import wait_for_stack
from deltastream.settings import Settings

if TYPE_CHECKING:
    from sinks.runner import SinkRunner

log = logging.getLogger("deltastream.sinks")

MONGO_GROUP = "deltastream-sink-mongo"
REDIS_GROUP = "deltastream-sink-redis"
GC_YOUNG = 20_000  # tracked objects allocated and not yet freed before a young collection


@contextlib.contextmanager
def settled_gc() -> Iterator[None]:
    """Keep the garbage collector out of a sink's batches while the sink runs. A batch
    allocates a dict or more per record and frees them all once written; with CPython's
    default thresholds (700) the collector ran every ~200 records (~1 us/record in the Redis
    sink) and every few batches walked the whole start-up heap (~60k objects, 20-30 ms each).
    Start-up objects are frozen (never walked again) and a young collection waits until
    `GC_YOUNG` more objects are alive than were freed: freed batches never add up to it.
    Restored afterwards (a sink may run in a thread of a bigger process: tests, the bench)."""
    thresholds = gc.get_threshold()
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_YOUNG, 10, 10)
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)


def run_mongo_sink(settings: Settings, stop: threading.Event | None = None,
                   group_id: str | None = None) -> int:
    """Write market.*, analytics.*, the DLQ and the logs into MongoDB; returns an exit code."""
    from sinks.mongo_sink import MONGO_TOPICS, MongoSink
    from sinks.runner import SinkRunner

    group_id = group_id or settings.topic_prefix + MONGO_GROUP
    wait_for_stack(settings, ("kafka", "mongodb"))
    runner = SinkRunner(MongoSink(settings), settings, group_id=group_id, topics=MONGO_TOPICS,
                        service="sink-mongo", stop=stop or _stop_on_signals())
    with settled_gc():
        return runner.run()


def run_redis_sink(settings: Settings, stop: threading.Event | None = None,
                   group_id: str | None = None) -> int:
    """Keep the latest values in Redis and publish the live events; returns an exit code."""
    group_id = group_id or settings.topic_prefix + REDIS_GROUP
    wait_for_stack(settings, ("kafka", "redis"))
    stop = stop or _stop_on_signals()
    with settled_gc():
        return run_lanes(redis_lanes(settings, group_id, stop), stop)


def redis_lanes(settings: Settings, group_id: str, stop: threading.Event) -> list[SinkRunner]:
    """The Redis sink's two lanes (`sinks.redis_sink.LIVE_TOPICS` / `STATE_TOPICS`), each a
    runner with its own consumer group and writer. Both keep their offsets in the same hash
    (`sink:offsets:{group_id}`, one field per partition), so a lane resumes from what Redis
    holds whatever its group committed; the live lane keeps the sink's group id."""
    from deltastream.clients import live_fetch_wait
    from sinks.redis_sink import LIVE_TOPICS, STATE_TOPICS, RedisSink
    from sinks.runner import SinkRunner

    return [SinkRunner(RedisSink(settings, group_id), settings, group_id=group_id, topics=LIVE_TOPICS,
                       service="sink-redis-live", stop=stop, consumer_overrides=live_fetch_wait(settings)),
            SinkRunner(RedisSink(settings, group_id), settings, group_id=f"{group_id}-state",
                       topics=STATE_TOPICS, service="sink-redis-state", stop=stop)]


def run_lanes(runners: list[SinkRunner], stop: threading.Event) -> int:
    """Each runner in a thread until `stop` is set or one of them ends, which stops the others
    (a lane that gave up a batch makes the process exit 1 and its supervisor restart it)."""
    codes: list[int] = []

    def lane(runner: SinkRunner) -> None:
        try:
            codes.append(runner.run())
        except Exception:
            log.exception("%s failed", runner.service)
            codes.append(1)
        finally:
            stop.set()

    threads = [threading.Thread(target=lane, args=(r,), name=r.service) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.5)  # the main thread stays free for the signal handlers
    return max(codes, default=0)


SINKS = {"mongo": run_mongo_sink, "redis": run_redis_sink}


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    return stop


def main(argv: list[str] | None = None) -> int:
    """python -m sinks.run mongo|redis [--group GROUP] (settings from DELTASTREAM_*)."""
    import argparse

    from deltastream.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m sinks.run", description=main.__doc__)
    parser.add_argument("sink", choices=sorted(SINKS))
    parser.add_argument("--group", help="consumer group id (default deltastream-sink-SINK)")
    args = parser.parse_args(argv)
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    kwargs = {"group_id": args.group} if args.group else {}
    return SINKS[args.sink](settings, **kwargs)


if __name__ == "__main__":
    sys.exit(main())
