"""Rooms and clients of one gateway process: who gets which message, and per-client backpressure.

Live messages are batched: `Hub.dispatch` only appends the envelope (its frame built once per
published message) to the hub's batch, and `Hub.flush`, scheduled for the end of the event loop
iteration (or `flush_delay` later), writes each client everything it gets from the batch in one
`transport.write`. The send syscall per client, not the Python around it, is most of a delivery's
cost, so a batch of k messages costs about one delivery per client instead of k. Clients with the
same rooms get the same bytes, joined once per group. Under load the batch grows by itself: while
one flush writes, the next messages wait in the Redis socket and are all read before the next.

A client whose socket keeps up (its kernel buffer plus the transport's, below `high` bytes) is
written to directly by the flush; otherwise its frames wait in a bounded queue drained by its own
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
    flushes: int = 0  # batches written out (deliveries / flushes: how much batching saves)
    skipped: int = 0  # data frames dropped by skip-ahead
    slow_disconnects: int = 0
    bad_envelopes: int = 0


class Client:
    """One authenticated connection: its rooms, its pending (re)syncs, its send queue."""

    __slots__ = ("ws", "user", "transport", "protocol", "rooms", "pending", "floor", "queue", "wake",
                 "high", "max_queue", "policy", "writer", "closing", "hub", "skipped", "group")

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
        self.group: frozenset[str] = frozenset()  # self.rooms as the key of the hub's groups
        self.writer = asyncio.create_task(self._write_loop())

    # -- sending --------------------------------------------------------------------------------
    def deliver_batch(self, envs: list[Envelope], frames: bytes) -> None:
        """Live messages of our rooms from one flush, in order; `frames` is their frames joined."""
        if (not (self.pending or self.floor or self.queue or self.closing)
                and self.protocol.state is OPEN
                and self.transport.get_write_buffer_size() + len(frames) <= self.high):
            self.transport.write(frames)  # the hot path: one write for the whole batch
            return
        # (Re)subscribing, behind, closing, or a batch bigger than the room left below `high`:
        # message by message, so that the queue (skip-ahead, 4408) bounds what a client holds.
        for env in envs:
            self.deliver(env)
        if self.floor:
            self._drop_floors()

    def _drop_floors(self) -> None:
        """Forget a room's floor once the hub has dispatched up to it: copies of messages up to the
        floor can no longer come (the hub drops what it has seen), and without a floor the client
        is back on the hot path even if the room stays quiet."""
        last = self.hub.last
        for room, (epoch, seq) in list(self.floor.items()):
            seen = last.get(room)
            if seen is not None and seen[0] == epoch and seen[1] >= seq:
                del self.floor[room]

    def deliver(self, env: Envelope) -> None:
        """A live message of one of our rooms."""
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
        """A control event (JSON bytes); never dropped by skip-ahead. Messages dispatched before
        it are written first (a `subscribed` or `resync` must follow the live data before it)."""
        if self.hub.batch:
            self.hub.flush()
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
                    # Up to `high` bytes of queued frames in one write (one syscall, not one each).
                    queue, size, frames = self.queue, 0, []
                    while queue and size <= self.high:
                        frame = queue.popleft()[0]
                        frames.append(frame)
                        size += len(frame)
                    self.transport.write(frames[0] if len(frames) == 1 else b"".join(frames))
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
    # Clients by their set of rooms: each group gets the same messages, so the same bytes.
    groups: dict[frozenset[str], set[Client]] = field(default_factory=dict)
    batch: list[Envelope] = field(default_factory=list)  # dispatched, not yet flushed
    flush_delay: float = 0.0  # seconds a batch waits for more (0: to the end of this loop iteration)
    _flush_handle: asyncio.Handle | None = None

    def add(self, client: Client) -> None:
        self.clients.add(client)
        self.join(client, GENERAL)

    def remove(self, client: Client) -> None:
        self.clients.discard(client)
        self._ungroup(client)
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
        self._regroup(client)

    def leave(self, client: Client, room: str) -> None:
        client.rooms.discard(room)
        client.pending.pop(room, None)
        client.floor.pop(room, None)
        members = self.rooms.get(room)
        if members is not None:
            members.discard(client)
            if not members:
                del self.rooms[room]
        self._regroup(client)

    def _regroup(self, client: Client) -> None:
        self._ungroup(client)
        if client.rooms:
            client.group = frozenset(client.rooms)
            self.groups.setdefault(client.group, set()).add(client)

    def _ungroup(self, client: Client) -> None:
        members = self.groups.get(client.group)
        if members is not None:
            members.discard(client)
            if not members:
                del self.groups[client.group]

    def dispatch(self, env: Envelope) -> None:
        """A live message: into the batch, written to the room's clients by the next flush."""
        seen = self.last.get(env.room)
        if seen is not None and seen[1] >= env.seq and seen[0] == env.epoch:
            return  # already dispatched (a history repair overlapping the live stream)
        self.stats.published += 1
        self.last[env.room] = (env.epoch, env.seq)
        if env.room not in self.rooms:
            return
        self.batch.append(env)
        if self._flush_handle is None:
            loop = asyncio.get_running_loop()
            self._flush_handle = (loop.call_later(self.flush_delay, self.flush)
                                  if self.flush_delay > 0 else loop.call_soon(self.flush))

    def flush(self) -> None:
        """Write the batch: per group of clients, its messages joined once; per client, one write.
        Membership is read now, and each client's pending/floor filter applies as in `deliver`."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        batch, self.batch = self.batch, []
        if not batch:
            return
        self.stats.flushes += 1
        delivered = 0
        single = len(batch) == 1
        for rooms, members in list(self.groups.items()):
            envs = ([env for env in batch if env.room in rooms] if not single
                    else batch if batch[0].room in rooms else ())
            if not envs:
                continue
            frames = envs[0].frame if len(envs) == 1 else b"".join([env.frame for env in envs])
            delivered += len(envs) * len(members)
            for client in list(members):  # a copy: nothing below should regroup, but never risk it
                client.deliver_batch(envs, frames)
        self.stats.delivered += delivered

    def snapshot(self) -> dict[str, Any]:
        return {"connections": len(self.clients),
                "rooms": {room: len(members) for room, members in sorted(self.rooms.items())},
                "queued": sum(len(c.queue) for c in self.clients),
                **{k: v for k, v in vars(self.stats).items()}}
