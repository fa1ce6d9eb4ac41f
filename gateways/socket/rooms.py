"""Rooms and clients of one gateway process: who gets which message, and per-client backpressure.

Delivery is one `transport.write` of a frame built once per published message. A client whose
socket keeps up (its kernel buffer plus the transport's, below `high` bytes) is written to
directly from the dispatch loop; otherwise its frames wait in a bounded queue drained by its own
writer task. When the queue is full the client is skipped ahead: queued data messages are
replaced by the newest one per (room, instrument) and a `skipped` event per room, or (policy
"disconnect", or when even that does not fit) the client is closed with code 4408. Either way
dispatching to the other clients never waits for it.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from websockets.asyncio.server import ServerConnection
from websockets.protocol import State

from gateways.socket.protocol import CLOSE_SLOW, GENERAL, Envelope, event, text_frame

log = logging.getLogger("deltastream.socket")
OPEN = State.OPEN

Item = tuple[bytes, Envelope | None]  # a frame, and the envelope it carries (None: control event)


@dataclass
class HubStats:
    delivered: int = 0  # data frames handed to clients (written or queued)
    published: int = 0  # envelopes received from Redis
    skipped: int = 0  # data frames dropped by skip-ahead
    slow_disconnects: int = 0
    bad_envelopes: int = 0


class Client:
    """One authenticated connection: its rooms, its pending (re)syncs, its send queue."""

    __slots__ = ("ws", "user", "transport", "protocol", "rooms", "pending", "floor", "queue", "wake",
                 "high", "max_queue", "policy", "writer", "closing", "hub", "skipped")

    def __init__(self, ws: ServerConnection, user: str, hub: "Hub", max_queue: int, policy: str,
                 high: int) -> None:
        self.ws, self.user, self.hub = ws, user, hub
        self.transport = ws.transport
        self.protocol = ws.protocol
        self.rooms: set[str] = set()
        # room → live messages that arrived while the room's history/snapshot was being read
        self.pending: dict[str, list[Envelope]] = {}
        # room → (epoch, seq) the client already has (from history or snapshot): live copies of
        # messages committed before the read can still be on their way through pub/sub.
        self.floor: dict[str, tuple[str | None, int]] = {}
        self.queue: deque[Item] = deque()
        self.wake = asyncio.Event()
        self.high, self.max_queue, self.policy = high, max_queue, policy
        self.closing = False
        self.skipped = 0
        self.writer = asyncio.create_task(self._write_loop())

    # -- sending --------------------------------------------------------------------------------
    def deliver(self, env: Envelope) -> None:
        """A live message of one of our rooms (the hot path)."""
        if self.pending or self.floor:
            if env.room in self.pending:
                self.pending[env.room].append(env)
                return
            floor = self.floor.get(env.room)
            if floor is not None:
                if env.epoch == floor[0] and env.seq <= floor[1]:
                    return  # already sent (history or snapshot)
                del self.floor[env.room]  # caught up: live from here on
        self.push(env.frame, env)

    def send(self, payload: bytes) -> None:
        """A control event (JSON bytes); never dropped by skip-ahead."""
        self.push(text_frame(payload), None)

    def push(self, frame: bytes, env: Envelope | None) -> None:
        if self.closing:
            return
        if (not self.queue and self.protocol.state is OPEN
                and self.transport.get_write_buffer_size() <= self.high):
            # Whole frames only, from the event loop thread: websockets' own writes (pings, close)
            # interleave between them safely, as with its `broadcast` helper.
            self.transport.write(frame)
            return
        self.queue.append((frame, env))
        if len(self.queue) > self.max_queue:
            self._overflow()
        self.wake.set()

    async def _write_loop(self) -> None:
        try:
            while True:
                await self.wake.wait()
                self.wake.clear()
                while self.queue:
                    if self.protocol.state is not OPEN:
                        self.queue.clear()
                        return
                    if self.transport.get_write_buffer_size() > self.high:
                        # websockets resumes it below its low-water mark (write_limit of serve()).
                        await self.ws.drain()
                        if self.transport.get_write_buffer_size() > self.high:
                            await asyncio.sleep(0.005)
                        continue
                    frame, _ = self.queue.popleft()
                    self.transport.write(frame)
        except (ConnectionError, OSError, asyncio.CancelledError):
            self.queue.clear()

    def _overflow(self) -> None:
        if self.policy == "disconnect":
            self.kick(f"slow consumer: more than {self.max_queue} messages queued")
            return
        # Skip ahead: per (room, instrument) only the newest data message stays.
        items = list(self.queue)
        newest: dict[tuple[str, str], int] = {}
        for i, (_, env) in enumerate(items):
            if env is not None:
                newest[(env.room, env.key)] = i
        kept: list[Item] = []
        dropped: dict[str, list[int]] = {}  # room → [count, first seq, last seq]
        for i, item in enumerate(items):
            env = item[1]
            if env is None or newest[(env.room, env.key)] == i:
                kept.append(item)
                continue
            d = dropped.get(env.room)
            if d is None:
                dropped[env.room] = [1, env.seq, env.seq]
            else:
                d[0] += 1
                d[1], d[2] = min(d[1], env.seq), max(d[2], env.seq)
        notices: list[Item] = [
            (text_frame(event("skipped", room=room, dropped=n, from_seq=a, to_seq=b,
                              reason="slow consumer: skipped ahead to the latest values")), None)
            for room, (n, a, b) in dropped.items()]
        count = sum(d[0] for d in dropped.values())
        self.skipped += count
        self.hub.stats.skipped += count
        self.queue = deque(notices + kept)
        if len(self.queue) > self.max_queue // 2:  # even the latest values do not fit
            self.kick("slow consumer: cannot keep up even when skipped ahead")

    def kick(self, reason: str) -> None:
        """Close a slow consumer (4408) without waiting for it."""
        if self.closing:
            return
        self.closing = True
        self.queue.clear()
        self.hub.stats.slow_disconnects += 1
        log.info("disconnecting slow client %s: %s", self.user, reason)
        asyncio.get_running_loop().create_task(self.ws.close(CLOSE_SLOW, reason[:120]))

    def stop(self) -> None:
        self.closing = True
        self.writer.cancel()


@dataclass
class Hub:
    """Room membership of this process and the dispatch of live messages to it."""

    rooms: dict[str, set[Client]] = field(default_factory=dict)
    clients: set[Client] = field(default_factory=set)
    last: dict[str, tuple[str, int]] = field(default_factory=dict)  # room → (epoch, seq) last seen
    stats: HubStats = field(default_factory=HubStats)

    def add(self, client: Client) -> None:
        self.clients.add(client)
        self.join(client, GENERAL)

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        for room in client.rooms:
            members = self.rooms.get(room)
            if members is not None:
                members.discard(client)
                if not members:
                    del self.rooms[room]
        client.rooms.clear()
        client.stop()

    def join(self, client: Client, room: str) -> None:
        client.rooms.add(room)
        self.rooms.setdefault(room, set()).add(client)

    def leave(self, client: Client, room: str) -> None:
        client.rooms.discard(room)
        client.pending.pop(room, None)
        client.floor.pop(room, None)
        members = self.rooms.get(room)
        if members is not None:
            members.discard(client)
            if not members:
                del self.rooms[room]

    def dispatch(self, env: Envelope) -> None:
        seen = self.last.get(env.room)
        if seen is not None and seen[1] >= env.seq and seen[0] == env.epoch:
            return  # already dispatched (a history repair overlapping the live stream)
        self.stats.published += 1
        self.last[env.room] = (env.epoch, env.seq)
        members = self.rooms.get(env.room)
        if not members:
            return
        self.stats.delivered += len(members)
        for client in members:  # dispatch is synchronous: membership cannot change meanwhile
            client.deliver(env)

    def snapshot(self) -> dict[str, Any]:
        return {"connections": len(self.clients),
                "rooms": {room: len(members) for room, members in sorted(self.rooms.items())},
                "queued": sum(len(c.queue) for c in self.clients),
                **{k: v for k, v in vars(self.stats).items()}}
