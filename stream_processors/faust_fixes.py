"""A fix for a message-loss race in faust-streaming 0.15.3, applied by `Pipeline`.

When a worker starts (or rebalances) with a backlog, Faust's table recovery ends with
(`Recovery._resume_streams` / `Recovery.on_recovery_completed`):

    consumer.resume_partitions(stream partitions)   # the fetch loop may deliver again
    await consumer.perform_seek()                  # read offsets := committed offsets
    app.flow_control.resume()                      # clears every stream queue
    consumer.resume_flow()

The fetch loop (`Consumer._drain_messages`) is still iterating records it fetched before the
seek. It keeps delivering them after `perform_seek` reset its read offsets, which moves the
read offsets past the committed ones again; `flow_control.resume()` then drops those
messages from the stream queues, and when the records are fetched again from the committed
offset the loop discards them as already read (offset < read offset). Measured here: a
worker killed mid-stream and restarted over a backlog lost a contiguous run of 9-19
messages per partition in 2 of 3 runs, never processed and never acknowledged.

The fix stops the flow at the start of `perform_seek`, so the loop stops handing out old
records (it checks `flow_active` per record) before the read offsets are reset. Both
callers resume the flow right after the seek; when the loop itself calls `perform_seek`
the flow is already stopped.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger(__name__)
_APPLIED = False


def apply() -> None:
    global _APPLIED
    if _APPLIED:
        return
    from faust.transport.consumer import Consumer

    original = Consumer.perform_seek

    async def perform_seek(self) -> None:
        self.stop_flow()
        await asyncio.sleep(0)  # let the fetch loop notice before the offsets move
        await original(self)

    perform_seek.__doc__ = original.__doc__
    Consumer.perform_seek = perform_seek
    _APPLIED = True


class FetchPacer:
    """Sets the Faust worker's fetch wait (aiokafka `fetch_max_wait_ms`, which Faust fixes at
    1500) from how far behind the worker is. On the embedded broker the wait trades latency
    for throughput: caught up, a record waits out much of it (produce → aiokafka consume p50
    406 ms at 1500, 3.8 ms at 20); behind, each fetch brings about what the wait lets Tansu
    gather (a backlog of one-record batches of ticks drained at 2,796/s with 1500, 782/s with
    100, 173/s with 20). So: `short` while the partitions of a batch are caught up, `long`
    while any of them is more than `behind` records from its end. Since the feed produces in
    batches the embedded profile's long wait is 100 ms: ticks drain at 7.6-8.6k/s with 100 and
    with 1500 alike, 5.9k/s with 20, and a 1500 ms fetch after a short stall had put p90 of the
    input's age at 1.2 s at 2,500 ticks/s (added latency p99 211-237 ms with 100, 216-509 with
    1500). The caught-up wait is now 100 ms too (`deltastream.clients.EMBEDDED_FETCH_WAIT_MS`:
    frequent fetches made Tansu's CPU climb through a run)."""

    def __init__(self, app: Any, short_ms: int, long_ms: int, behind: int) -> None:
        self.app, self.short, self.long, self.behind = app, short_ms, long_ms, behind

    def _fetcher(self) -> Any:
        """aiokafka's fetcher, once the consumer thread has started it (looked up each time:
        Faust may create a new consumer)."""
        consumer = getattr(getattr(self.app.consumer, "_thread", None), "_consumer", None)
        return getattr(consumer, "_fetcher", None)

    def observe(self, last_offsets: dict[tuple[str, int], int]) -> None:
        """After a batch: the last offset it held per (topic, partition)."""
        from faust.types import TP

        consumer = self.app.consumer
        lag = 0
        for (topic, partition), offset in last_offsets.items():
            try:
                high = consumer.highwater(TP(topic, partition))
            except Exception:  # noqa: BLE001 - not assigned (any more): no signal
                continue
            if high is not None:
                lag = max(lag, high - offset - 1)
        wait = self.long if lag > self.behind else self.short
        fetcher = self._fetcher()
        if fetcher is not None and fetcher._fetch_max_wait_ms != wait:
            fetcher._fetch_max_wait_ms = wait  # read when the next fetch request is built


def set_fetch_max_wait(app: object, ms: int) -> None:
    """Faust creates its aiokafka consumer with `fetch_max_wait_ms=1500`, not a setting; this
    makes every consumer it creates start with `ms` (see `FetchPacer` for why and the
    figures). aiokafka reads the value per fetch request, so setting it on the freshly
    created consumer is enough; the pacer changes it later."""
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

    thread_cls = AIOKafkaConsumerThread
    if getattr(thread_cls, "_ds_fetch_wait", None) is None:
        create = thread_cls._create_worker_consumer

        def _create_worker_consumer(self, transport):  # type: ignore[no-untyped-def]
            consumer = create(self, transport)
            wait = getattr(self.app, "_ds_fetch_max_wait_ms", None)
            if wait is not None:
                consumer._fetch_max_wait_ms = wait
                log.info("consumer fetches wait at most %d ms for data (Faust's own: 1500)", wait)
            return consumer

        thread_cls._create_worker_consumer = _create_worker_consumer
        thread_cls._ds_fetch_wait = True
    app._ds_fetch_max_wait_ms = ms  # type: ignore[attr-defined]
