"""Automatic pipelining: Redis commands issued by concurrent requests in the same event-loop
tick go to Redis as one pipeline (one connection checkout, one write, one read).

Each gateway request makes ~2 Redis calls (the rate-limit script, the `latest:*` value), and
redis-py's per-command overhead (pool checkout, retry wrapper, timeouts) costs more CPU than
the rest of a cached request; under load many requests are in the same tick, so batching
divides that overhead among them. A lone command still costs one round trip (the flush is
scheduled with `call_soon`, not a timer: no added latency).

Semantics of each command are unchanged: its own reply or its own error (a `ResponseError`
such as NOSCRIPT goes to that command only; a connection error to every command of the
batch, as it would have reached each of them).
"""
from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis as AsyncRedis

_Pending = list[tuple[tuple[Any, ...], asyncio.Future]]


class AutoPipeline:
    def __init__(self, redis: AsyncRedis, max_batch: int = 512) -> None:
        self.redis, self.max_batch = redis, max_batch
        self._pending: _Pending = []
        self._tasks: set[asyncio.Task] = set()  # running batches (referenced until done)

    async def execute(self, *args: Any) -> Any:
        """Run one command (as `redis.execute_command(*args)`), batched with its tick's others."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        self._pending.append((args, future))
        if len(self._pending) == 1:
            loop.call_soon(self._flush)
        elif len(self._pending) >= self.max_batch:
            self._flush()
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.ensure_future(self._send(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: _Pending) -> None:
        try:
            if len(batch) == 1:
                try:
                    replies: list[Any] = [await self.redis.execute_command(*batch[0][0])]
                except Exception as exc:  # noqa: BLE001 - delivered to the caller below
                    replies = [exc]
            else:
                pipe = self.redis.pipeline(transaction=False)
                for args, _ in batch:
                    pipe.execute_command(*args)
                replies = await pipe.execute(raise_on_error=False)  # resets the pipe itself
        except BaseException as exc:  # connection lost, timeout, cancelled at shutdown
            replies = [exc] * len(batch)
        for (_, future), reply in zip(batch, replies):
            if future.done():  # its request was cancelled (client went away)
                continue
            if isinstance(reply, asyncio.CancelledError):
                future.cancel()
            elif isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)
