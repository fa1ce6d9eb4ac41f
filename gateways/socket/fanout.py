"""One Redis pub/sub subscription per gateway process, dispatched to the local rooms.

Every gateway process subscribes to the sink's channels itself, so any number of processes
(on any number of ports or hosts) each deliver every message to their own clients. When the
subscription is lost, the listener reconnects with backoff and fills each local room's gap from
the room's history (or tells its clients to resync), see `resume.repair`.
"""
from __future__ import annotations

import asyncio
import logging

from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

from gateways.socket.protocol import parse_envelope
from gateways.socket.resume import RoomReader, repair
from gateways.socket.rooms import Hub

log = logging.getLogger("deltastream.socket.fanout")

# The sink's live channels (sinks/redis_sink.py, docs/storage.md).
CHANNELS = ("enriched:underlying", "enriched:chain_summary", "enriched:option_chain")


class Fanout:
    def __init__(self, redis, hub: Hub, reader: RoomReader) -> None:
        self.redis, self.hub, self.reader = redis, hub, reader
        self.subscribed = asyncio.Event()  # set while the subscription is in place
        self.reconnects = 0

    async def run(self) -> None:
        """Listen until cancelled."""
        backoff, first = 0.1, True
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(*CHANNELS)
                if not first:
                    self.reconnects += 1
                    await repair(self.hub, self.reader)
                first, backoff = False, 0.1
                self.subscribed.set()
                log.info("subscribed to %s", ", ".join(CHANNELS))
                await self._listen(pubsub)
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                self.subscribed.clear()
                log.warning("Redis pub/sub lost (%s); reconnecting in %.1fs", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                self.subscribed.clear()
                try:
                    await pubsub.aclose()
                except Exception:  # the connection is gone anyway
                    pass

    async def _listen(self, pubsub) -> None:
        dispatch, stats = self.hub.dispatch, self.hub.stats
        async for message in pubsub.listen():
            if message["type"] != "message":
                continue
            try:
                env = parse_envelope(message["data"])
            except (ValueError, KeyError, TypeError):
                stats.bad_envelopes += 1
                log.warning("not an envelope on %s: %.80r", message["channel"], message["data"])
                continue
            dispatch(env)
