"""Resume from `since`: no gap and no duplicate while publishing goes on; resync when the
room's history is lost (keys deleted: new epoch) or no longer reaches back (trimmed)."""
from __future__ import annotations

import asyncio
import threading

from deltastream.clients import redis_client
from tests.socket.conftest import open_client, recv, recv_until, subscribe
from tests.socket.publish import SinkPublisher


async def test_resume_with_since_has_no_gap_and_no_duplicate_while_publishing(settings, gateway, publisher,
                                                                            products):
    p = products[0]
    room = f"product:{p}"
    ws = await open_client(settings, gateway.port)
    sub = await subscribe(ws, "product", p)
    epoch = sub["epoch"]
    for _ in range(20):
        publisher.publish("underlying_update", p)
    got = await recv_until(ws, lambda m: m.get("room") == room and m["seq"] == 20)
    seqs = [m["seq"] for m in got if m.get("room") == room]
    assert seqs == list(range(1, 21))
    epoch = got[-1]["epoch"]
    await ws.close()

    # Publishing goes on from another thread while the client is away and while it resumes.
    total = 400
    stop = threading.Event()
    busy = SinkPublisher(settings, publisher.sink.offsets_key.removeprefix("sink:offsets:") + "-bg")

    def publish_more() -> None:
        for _ in range(total - 20):
            busy.write([busy.record("underlying_update", p)])
            if stop.is_set():
                return

    thread = threading.Thread(target=publish_more, daemon=True)
    thread.start()
    try:
        r = redis_client(settings)
        async with asyncio.timeout(30):  # some messages are missed while the client is away
            while int(r.get(f"seq:{room}") or 0) < 40:
                await asyncio.sleep(0.01)
        r.close()
        ws = await open_client(settings, gateway.port)
        sub = await subscribe(ws, "product", p, since=20, epoch=epoch)
        assert sub["event"] == "subscribed" and sub["resumed"] is True and sub["epoch"] == epoch
        got = await recv_until(ws, lambda m: m.get("room") == room and m["seq"] == total, timeout=60)
    finally:
        stop.set()
        thread.join(30)
        busy.close()
    seqs = [m["seq"] for m in got if m.get("room") == room]
    assert seqs == list(range(21, total + 1))  # every one once, in order
    assert sub["missed"] >= 1  # some came from the history
    assert all(m["epoch"] == epoch for m in got if m.get("room") == room)
    await ws.close()


async def test_resync_when_the_history_is_lost(settings, gateway, publisher, products):
    p = products[0]
    room = f"chain:{p}"
    for _ in range(5):
        publisher.publish("chain_update", p)
    ws = await open_client(settings, gateway.port)
    sub = await subscribe(ws, "chain", p)
    old_epoch = sub["epoch"]
    assert sub["seq"] == 5
    await recv(ws)  # snapshot
    await ws.close()

    # The room's keys vanish (Redis restarted empty, flushed, expired): the sink starts a new epoch.
    r = redis_client(settings)
    r.delete(f"history:{room}", f"seq:{room}", f"epoch:{room}")
    latest = [publisher.publish("chain_update", p) for _ in range(3)][-1]
    ws = await open_client(settings, gateway.port)
    resync = await subscribe(ws, "chain", p, since=5, epoch=old_epoch)
    assert resync["event"] == "resync" and resync["epoch"] != old_epoch and resync["seq"] == 3
    assert "epoch" in resync["reason"]
    sub, snap = await recv(ws), await recv(ws)
    assert sub["event"] == "subscribed" and not sub.get("resumed")
    assert snap["snapshot"] is True and snap["data"] == latest and snap["seq"] == 3
    # Live continues after the snapshot's seq.
    publisher.publish("chain_update", p)
    assert (await recv(ws))["seq"] == 4
    await ws.close()

    # Same epoch, but the history was trimmed past `since`.
    for _ in range(10):
        publisher.publish("chain_update", p)
    r.xtrim(f"history:{room}", maxlen=3, approximate=False)
    ws = await open_client(settings, gateway.port)
    resync = await subscribe(ws, "chain", p, since=4, epoch=resync["epoch"])
    assert resync["event"] == "resync" and "reaches back" in resync["reason"]
    assert (await recv(ws))["event"] == "subscribed"
    assert (await recv(ws))["seq"] == 14
    # A resume the history still covers works in the same epoch.
    resumed = await subscribe(ws, "chain", p, since=12, epoch=resync["epoch"])
    assert resumed["resumed"] is True
    assert [(await recv(ws))["seq"] for _ in range(2)] == [13, 14]
    r.close()
    await ws.close()


async def test_gateway_repairs_a_lost_pubsub_connection_from_the_history(settings, gateway, publisher, products):
    p = products[0]
    room = f"product:{p}"
    ws = await open_client(settings, gateway.port)
    await subscribe(ws, "product", p)
    publisher.publish("underlying_update", p)
    assert (await recv_until(ws, lambda m: m.get("room") == room))[-1]["seq"] == 1
    # Kill the gateway's pub/sub connection; publish while it is gone.
    r = redis_client(settings)
    for c in r.client_list(_type="pubsub"):
        if int(c.get("psub", 0)) == 0 and int(c.get("sub", 0)) == 3:
            r.client_kill_filter(_id=c["id"])
    for _ in range(5):
        publisher.publish("underlying_update", p)
    got = await recv_until(ws, lambda m: m.get("room") == room and m["seq"] == 6, timeout=30)
    assert [m["seq"] for m in got if m.get("room") == room] == [2, 3, 4, 5, 6]
    assert gateway.fanout.reconnects >= 1
    r.close()
    await ws.close()
