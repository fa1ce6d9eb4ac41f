"""Batched writes (one write per client per flush, clients grouped by their rooms) still give
every client every message of its rooms, once, in order, whatever mix of rooms it is in."""
from __future__ import annotations

import asyncio
import threading
import time

import orjson
from websockets.asyncio.client import connect

from deltastream.clients import redis_client
from tests.socket.conftest import open_client, recv_until, subscribe, token, url
from tests.socket.publish import SinkPublisher

BURSTS, PER_BURST = 5, 40  # records per sink write: they reach the gateway together


async def read_all(ws, expected: dict[str, int], timeout: float = 60) -> dict[str, list[dict]]:
    """Data messages by room until each room of `expected` has that many (of our products)."""
    got: dict[str, list[dict]] = {room: [] for room in expected}
    async with asyncio.timeout(timeout):
        while any(len(got[room]) < n for room, n in expected.items()):
            msg = orjson.loads(await ws.recv())
            if "room" in msg and msg["room"] in got:
                got[msg["room"]].append(msg)
    return got


async def test_batched_flushes_deliver_every_message_in_order_to_every_room_mix(
        settings, gateway, publisher, products):
    p, q = products
    mixes = ([()] * 8 + [(("product", p),)] * 6 + [(("product", q),)] * 6
             + [(("product", p), ("chain", p))] * 5)
    clients = []
    for mix in mixes:
        ws = await open_client(settings, gateway.port)
        for kind, symbol in mix:
            assert (await subscribe(ws, kind, symbol))["event"] == "subscribed"
        clients.append((ws, mix))
    # Snapshots are empty (fresh products), so everything from here on is live.
    kinds = [("underlying_update", p), ("underlying_update", q), ("chain_update", p),
             ("chain_summary", q)]
    published_before = gateway.hub.stats.published
    flushes_before = gateway.hub.stats.flushes
    for _ in range(BURSTS):
        publisher.write([publisher.record(*kinds[i % len(kinds)]) for i in range(PER_BURST)])
    per_kind = BURSTS * PER_BURST // len(kinds)
    rooms_of = {"general": 3 * per_kind, f"product:{p}": per_kind, f"product:{q}": 2 * per_kind,
                f"chain:{p}": per_kind}

    async def check(ws, mix) -> None:
        rooms = ["general"] + [f"{kind}:{symbol}" for kind, symbol in mix]
        got = await read_all(ws, {room: rooms_of[room] for room in rooms})
        for room in rooms:
            seqs = [m["seq"] for m in got[room]]
            first = 1 if room != "general" else seqs[0]  # general is shared with other tests
            assert seqs == list(range(first, first + rooms_of[room])), room  # no gap, no duplicate
            if room == "general":
                assert {m["data"]["product"] for m in got[room]} == {p, q}
            else:
                assert all(m["data"]["product"] == room.split(":")[1] for m in got[room])

    await asyncio.gather(*(check(ws, mix) for ws, mix in clients))
    stats = gateway.hub.stats
    assert stats.published - published_before == sum(rooms_of.values())
    # A sink write's envelopes arrive together: far fewer flushes (writes per client) than messages.
    assert stats.flushes - flushes_before < stats.published - published_before
    for ws, _ in clients:
        await ws.close()


async def test_clients_connecting_during_a_stream_get_connected_first_then_no_gap(
        settings, gateway, products):
    """A client joins `general` while batches are in flight: its `connected` event still comes
    first, and from its first data message on it has every one, in order."""
    p = products[0]
    gateway.hub.flush_delay = 0.05  # batches wait long enough for a client to connect meanwhile
    stop = threading.Event()
    busy = SinkPublisher(settings, f"batching-{p}")

    def publish() -> None:  # bounded (~250 kB per client), so no client is skipped ahead
        for _ in range(200):
            if stop.is_set():
                return
            busy.write([busy.record("underlying_update", p) for _ in range(5)])
            time.sleep(0.005)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    clients = []
    try:
        for _ in range(30):
            ws = await connect(url(gateway.port, token(settings)))
            clients.append((ws, await ws.recv()))
        first = [orjson.loads(hello) for _, hello in clients]
        assert [m.get("event") for m in first] == ["connected"] * len(clients), first
        await asyncio.sleep(0.3)
    finally:
        stop.set()
        await asyncio.to_thread(thread.join, 30)
        busy.close()
    r = redis_client(settings)
    last = int(r.get("seq:general"))
    r.close()

    async def check(ws) -> None:
        got = await recv_until(ws, lambda m: m.get("room") == "general" and m["seq"] == last,
                               timeout=60)
        seqs = [m["seq"] for m in got if m.get("room") == "general"]
        assert seqs == list(range(seqs[0], last + 1))

    await asyncio.gather(*(check(ws) for ws, _ in clients))
    assert gateway.hub.stats.skipped == 0
    for ws, _ in clients:
        await ws.close()
