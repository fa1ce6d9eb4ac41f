"""A slow client never delays the others: it is skipped ahead to the latest values (or, by
policy, disconnected with 4408) while a fast client gets every message in order."""
from __future__ import annotations

import socket

import pytest
from websockets.exceptions import ConnectionClosed

from tests.socket.conftest import open_client, recv, recv_until, running_gateway, subscribe

BIG = "x" * 16_000  # ~16 kB per message fills the socket buffers quickly
COUNT = 600


async def stalled_client(settings, port: int):
    """A client that reads nothing: tiny receive buffer, and its library stops reading at once."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return await open_client(settings, port, sock=sock, max_queue=1)


@pytest.mark.parametrize("policy", ["skip", "disconnect"])
async def test_slow_client_does_not_delay_a_fast_one(settings, publisher, products, policy):
    p = products[0]
    room = f"chain:{p}"
    tight = settings.model_copy(update={"socket_queue_size": 40, "socket_slow_policy": policy})
    async with running_gateway(tight) as gateway:
        slow = await stalled_client(tight, gateway.port)
        fast = await open_client(tight, gateway.port)
        for ws in (slow, fast):
            assert (await subscribe(ws, "chain", p))["event"] == "subscribed"
        for i in range(COUNT):
            publisher.publish("chain_update", p, expiry=("2026-11-26", "2026-12-03")[i % 2], pad=BIG)
        # The fast client gets all of them, in order, while the slow one has read nothing.
        got = await recv_until(fast, lambda m: m.get("seq") == COUNT, timeout=60)
        assert [m["seq"] for m in got if m.get("room") == room] == list(range(1, COUNT + 1))
        stats = gateway.hub.stats
        if policy == "skip":
            assert stats.skipped > 0 and stats.slow_disconnects == 0
            # Reading again, the slow client is told what it skipped and ends on the latest values.
            msgs = await recv_until(slow, lambda m: m.get("seq") == COUNT, timeout=60)
            data = [m for m in msgs if m["event"] == "chain_update"]
            skipped = [m for m in msgs if m["event"] == "skipped"]
            assert skipped and all(s["room"] == room and s["dropped"] > 0 for s in skipped)
            assert len(data) + sum(s["dropped"] for s in skipped) == COUNT  # each one sent or counted
            seqs = [m["seq"] for m in data]
            assert seqs == sorted(seqs) and seqs[-2:] == [COUNT - 1, COUNT]  # latest of each expiry
        else:
            assert stats.slow_disconnects == 1
            with pytest.raises(ConnectionClosed):
                while True:
                    await recv(slow, timeout=30)
            assert slow.close_code in (4408, 1006)  # 1006 if the close frame could not get through
        await fast.close()
        await slow.close()
