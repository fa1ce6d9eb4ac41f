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


def set_fetch_max_wait(app: object, ms: int) -> None:
    """Faust creates its aiokafka consumer with `fetch_max_wait_ms=1500`, not a setting; this
    makes every consumer it creates use `ms` (aiokafka reads the value per fetch request).

    On the embedded broker the wait trades latency for throughput: caught up, a record
    waits out much of it (produce → aiokafka consume p50 406 ms at 1500, 3.8 ms at 20);
    behind, each fetch brings about what the wait lets Tansu gather. With the feed's batched
    writes a backlog of ticks drains at 7.6-8.6k/s with 100 and with 1500 alike, 5.9k/s with
    20, and a 1500 ms fetch after a short stall put p90 of the input's age at 1.2 s at 2,500
    ticks/s. A pacer once switched to 20 ms while caught up; frequent fetches made Tansu's
    CPU climb through a run, so the wait is one value (`faust_fetch_max_wait_ms`)."""
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
