"""A slow client never delays the others: it is skipped ahead to the latest values (or, by
policy, disconnected with 4408) while a fast client gets every message in order."""
from __future__ import annotations

import socket

import pytest
from websockets.exceptions import ConnectionClosed

from gateways.socket.server import WRITE_HIGH
from tests.socket.conftest import open_client, published, recv, recv_until, running_gateway, subscribe

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


async def test_a_batch_bigger_than_the_write_limit_is_not_written_at_once(settings, publisher, products):
    """A flush holding more than a client may have buffered goes message by message: written up
    to the write limit, the rest queued (bounded, skip-ahead), never all of it in one write."""
    p = products[0]
    roomy = settings.model_copy(update={"socket_queue_size": 1000})
    async with running_gateway(roomy) as gateway:
        gateway.hub.flush_delay = 600  # one batch, flushed below
        slow = await stalled_client(roomy, gateway.port)
        assert (await subscribe(slow, "chain", p))["event"] == "subscribed"
        (client,) = gateway.hub.clients
        # A small kernel send buffer on the gateway's side too (no autotuning up to MBs).
        client.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        publisher.publish("chain_update", p)  # a first live message: the client is on the fast path
        await published(gateway, 1)
        gateway.hub.flush()
        assert not client.floor and not client.queue
        count = 100  # ~1.6 MB
        expiries = ("2026-11-26", "2026-12-03")
        publisher.write([publisher.record("chain_update", p, expiry=expiries[i % 2], pad=BIG)
                         for i in range(count)])
        await published(gateway, 1 + count)
        gateway.hub.flush()
        frame = len(BIG) + 1_000
        assert client.transport.get_write_buffer_size() <= WRITE_HIGH + frame
        assert 0 < len(client.queue) < count and gateway.hub.stats.skipped == 0
        slow.transport.abort()  # no closing handshake through 1.6 MB it will not read
