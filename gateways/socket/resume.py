"""Snapshot and catch-up for a room, from what the Redis sink keeps (docs/storage.md).

A subscribe (with or without `since`) is one atomic read by a Lua script: the room's epoch and
seq, its latest values (`latest:*`) and, for a resume, its history after `since`. The sink
writes latest values, seq and history in one script too, so the read sees the room exactly as
of one seq S. Live messages of the room that arrive meanwhile wait in the client's pending list
(the process is subscribed to the channels before any client joins); afterwards only those
with seq > S (or of a newer epoch) are sent, and copies of messages up to S still on their way
through pub/sub are dropped (`Client.floor`): no gap, no duplicate.
"""
from __future__ import annotations

from dataclasses import dataclass

from gateways.socket.protocol import Envelope, event, parse_envelope
from gateways.socket.rooms import Client, Hub

_READ = r"""
local room, kind, product, since = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local call = redis.call
local epoch = call('GET', 'epoch:' .. room)
local seq = call('GET', 'seq:' .. room)
local snap = {}
local function add(name, key)
  local v = call('GET', key)
  if v then snap[#snap + 1] = name; snap[#snap + 1] = v end
end
if kind == 'product' then
  add('underlying_update', 'latest:underlying:' .. product)
  for _, e in ipairs(call('ZRANGE', 'expiries:' .. product, 0, -1)) do
    add('chain_summary', 'latest:analytics:' .. product .. ':' .. e)
  end
elseif kind == 'chain' then
  for _, e in ipairs(call('ZRANGE', 'expiries:' .. product, 0, -1)) do
    add('chain_update', 'latest:chain:' .. product .. ':' .. e)
  end
end
local first, hist = false, {}
if since then
  local f = call('XRANGE', 'history:' .. room, '-', '+', 'COUNT', 1)
  if #f > 0 then first = f[1][1] end
  local h = call('XRANGE', 'history:' .. room, string.format('%d-0', since + 1), '+')
  for i, entry in ipairs(h) do hist[i] = entry[2][2] end
end
return {epoch, seq, snap, first, hist}
"""


@dataclass(frozen=True)
class RoomState:
    epoch: str | None
    seq: int
    snapshot: list[tuple[str, bytes]]  # (event, latest value JSON)
    first_seq: int | None  # oldest seq still in the history (when `since` was given)
    history: list[bytes]  # envelopes with seq > since, oldest first


class RoomReader:
    def __init__(self, redis) -> None:
        self.script = redis.register_script(_READ)

    async def read(self, room: str, since: int | None = None) -> RoomState:
        kind, _, symbol = room.partition(":")
        epoch, seq, snap, first, hist = await self.script(
            args=[room, kind, symbol, "" if since is None else str(since)])
        return RoomState(
            epoch=epoch.decode() if epoch else None, seq=int(seq or 0),
            snapshot=[(snap[i].decode(), snap[i + 1]) for i in range(0, len(snap), 2)],
            first_seq=int(first.split(b"-")[0]) if first else None, history=list(hist or []))


def resync_reason(state: RoomState, since: int, epoch: str | None) -> str | None:
    """Why a resume from `since` cannot be served from the history (None: it can)."""
    if epoch is not None and epoch != state.epoch:
        return "epoch changed: the room's history was lost"
    if since > state.seq:
        return f"since {since} is ahead of the room (seq {state.seq})"
    if since == state.seq:
        return None  # nothing missed
    if state.first_seq is None or state.first_seq > since + 1:
        return "history no longer reaches back to since"
    return None


def snapshot_frames(room: str, state: RoomState) -> list[bytes]:
    """The room's latest values as data events, flagged `snapshot`, carrying the room's seq."""
    epoch = b"null" if state.epoch is None else b'"%s"' % state.epoch.encode()
    return [b'{"room":"%s","seq":%d,"epoch":%s,"event":"%s","snapshot":true,"data":%s}'
            % (room.encode(), state.seq, epoch, name.encode(), value) for name, value in state.snapshot]


async def subscribe(client: Client, hub: Hub, reader: RoomReader, room: str,
                    since: int | None = None, epoch: str | None = None) -> None:
    """Join `room`: snapshot (or resume from `since`), then live messages without gap or duplicate."""
    client.pending[room] = []
    hub.join(client, room)  # live messages of the room now wait in client.pending[room]
    try:
        state = await reader.read(room, since)
    except BaseException:
        hub.leave(client, room)
        raise
    if room not in client.rooms:  # unsubscribed or gone meanwhile
        return
    reason = None if since is None else resync_reason(state, since, epoch)
    if since is not None and reason is None:
        client.send(event("subscribed", room=room, epoch=state.epoch, seq=state.seq, resumed=True,
                          missed=len(state.history)))
        last = since
        for raw in state.history:
            env = parse_envelope(raw)
            client.push(env.frame, env)
            last = env.seq
    else:
        if reason is not None:
            client.send(event("resync", room=room, reason=reason, epoch=state.epoch, seq=state.seq))
        client.send(event("subscribed", room=room, epoch=state.epoch, seq=state.seq))
        send_snapshot(client, room, state)
        last = state.seq
    flush_pending(client, room, state.epoch, last)


def send_snapshot(client: Client, room: str, state: RoomState) -> None:
    for payload in snapshot_frames(room, state):
        client.send(payload)


def flush_pending(client: Client, room: str, epoch: str | None, last: int) -> None:
    """Switch the room to live: send what arrived meanwhile and is newer than `last`."""
    waiting: list[Envelope] = client.pending.pop(room, [])
    for env in waiting:
        if env.epoch != epoch or env.seq > last:
            client.push(env.frame, env)
            epoch, last = env.epoch, env.seq
    # Messages committed before the read may still arrive through pub/sub: drop those.
    client.floor[room] = (epoch, last)


async def repair(hub: Hub, reader: RoomReader) -> None:
    """After the pub/sub connection was lost: fill every room's gap from the history, or tell
    its clients to resync (with a fresh snapshot) when the history no longer reaches back."""
    for room in list(hub.rooms):
        seen = hub.last.get(room)
        if seen is None:
            continue
        last_epoch, last_seq = seen
        state = await reader.read(room, last_seq)
        reason = resync_reason(state, last_seq, last_epoch)
        if reason is None:
            for raw in state.history:
                env = parse_envelope(raw)
                if env.seq > hub.last[room][1] or env.epoch != hub.last[room][0]:
                    hub.dispatch(env)
            continue
        hub.last[room] = (state.epoch or "", state.seq)
        for client in list(hub.rooms.get(room, ())):
            client.send(event("resync", room=room, reason=reason, epoch=state.epoch, seq=state.seq))
            send_snapshot(client, room, state)
