"""The WebSocket gateway against real Redis, with real `websockets` clients: authentication,
rooms, snapshots, bad frames, ping/pong, HTTP endpoints."""
from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from gateways.common.tokens import issue_token
from tests.socket.conftest import open_client, recv, recv_until, subscribe, token, url


async def closed_code(ws) -> int:
    with pytest.raises(ConnectionClosed):
        while True:
            await asyncio.wait_for(ws.recv(), 10)
    return ws.close_code


async def test_auth_failures_get_an_error_event_and_close_4401(settings, gateway):
    port = gateway.port
    now = dt.datetime.now(dt.timezone.utc)
    expired = issue_token(settings, "bob", "access", now=now - dt.timedelta(minutes=settings.access_token_minutes + 1))[0]
    refresh = issue_token(settings, "bob", "refresh")[0]
    for bad in ("not-a-jwt", expired, refresh):
        async with connect(url(port, bad)) as ws:
            err = await recv(ws)
            assert err["event"] == "error" and err["code"] == 4401
            assert await closed_code(ws) == 4401
    # No token at all: the first message must authenticate.
    async with connect(url(port)) as ws:
        await ws.send('{"action":"ping"}')
        assert (await recv(ws))["event"] == "error"
        assert await closed_code(ws) == 4401
    # A token signed with another secret.
    forged = issue_token(settings.model_copy(update={"jwt_secret": "x" * 40}), "eve", "access")[0]
    async with connect(url(port, forged)) as ws:
        assert (await recv(ws))["code"] == 4401
        assert await closed_code(ws) == 4401
    # The token as first message works.
    async with connect(url(port)) as ws:
        await ws.send(orjson.dumps({"action": "auth", "token": token(settings, "carol")}).decode())
        hello = await recv(ws)
        assert hello == {"event": "connected", "user": "carol", "rooms": ["general"]}


async def test_rooms_get_only_their_events_and_general_gets_every_product(settings, gateway, publisher, products):
    p1, p2 = products
    port = gateway.port
    prod1, chain1, prod2, plain = [await open_client(settings, port) for _ in range(4)]
    assert (await subscribe(prod1, "product", p1))["room"] == f"product:{p1}"
    assert (await subscribe(chain1, "chain", p1))["room"] == f"chain:{p1}"
    assert (await subscribe(prod2, "product", p2.lower()))["room"] == f"product:{p2}"  # symbols upper-cased
    sent = [publisher.publish("underlying_update", p1), publisher.publish("chain_update", p1),
            publisher.publish("underlying_update", p2), publisher.publish("chain_summary", p1),
            publisher.publish("chain_update", p2), publisher.publish("chain_summary", p2)]
    last = sent[-1]["n"]

    def got(ws, room="general"):  # messages up to the last one the client gets (n == last in `room`)
        return recv_until(ws, lambda m: m.get("data", {}).get("n") == last and m["room"] == room)

    # Each client also sees general's copy of underlying/summary; take each room's messages apart.
    general = await got(plain)
    assert [(m["room"], m["event"], m["data"]["product"]) for m in general] == [
        ("general", "underlying_update", p1), ("general", "underlying_update", p2),
        ("general", "chain_summary", p1), ("general", "chain_summary", p2)]
    assert [m["seq"] for m in general] == sorted(m["seq"] for m in general)
    msgs = await got(prod1)
    mine = [(m["event"], m["data"]["product"]) for m in msgs if m["room"] == f"product:{p1}"]
    assert mine == [("underlying_update", p1), ("chain_summary", p1)]
    assert {m["room"] for m in msgs} == {"general", f"product:{p1}"}
    msgs = await got(prod2, f"product:{p2}")  # general's copy comes first (sink order)
    assert [(m["event"], m["data"]["product"]) for m in msgs if m["room"] == f"product:{p2}"] == [
        ("underlying_update", p2), ("chain_summary", p2)]
    msgs = await got(chain1)
    assert [(m["event"], m["data"]["n"]) for m in msgs if m["room"] == f"chain:{p1}"] == [
        ("chain_update", sent[1]["n"])]
    assert all(m["room"] != f"chain:{p2}" for m in msgs)
    # Unsubscribe: no more events of that room.
    await prod1.send(orjson.dumps({"action": "unsubscribe", "type": "product", "symbol": p1}).decode())
    assert await recv(prod1) == {"event": "unsubscribed", "room": f"product:{p1}"}
    final = publisher.publish("underlying_update", p1)
    msgs = await recv_until(prod1, lambda m: m.get("data", {}).get("n") == final["n"])
    assert [m["room"] for m in msgs] == ["general"]
    for ws in (prod1, chain1, prod2, plain):
        await ws.close()


async def test_snapshot_on_subscribe_is_the_latest_value_with_the_room_seq(settings, gateway, publisher, products):
    p = products[0]
    for _ in range(3):
        publisher.publish("underlying_update", p)
    last_tick = publisher.publish("underlying_update", p)
    summary = publisher.publish("chain_summary", p, expiry="2026-11-26")
    chain_a = publisher.publish("chain_update", p, expiry="2026-11-26")
    chain_b = publisher.publish("chain_update", p, expiry="2026-12-03")
    ws = await open_client(settings, gateway.port)
    sub = await subscribe(ws, "product", p)
    assert sub["seq"] == 5 and sub["epoch"]
    snap = [await recv(ws), await recv(ws)]
    assert [(m["event"], m["data"], m["seq"], m["snapshot"]) for m in snap] == [
        ("underlying_update", last_tick, 5, True), ("chain_summary", summary, 5, True)]
    sub = await subscribe(ws, "chain", p)
    assert sub["seq"] == 2
    snap = [await recv(ws), await recv(ws)]
    assert sorted(m["data"]["expiry"] for m in snap) == ["2026-11-26", "2026-12-03"]
    assert {m["data"]["n"] for m in snap} == {chain_a["n"], chain_b["n"]}
    # Then live, continuing the room's seq.
    publisher.publish("chain_update", p)
    live = await recv_until(ws, lambda m: m.get("room") == f"chain:{p}")
    assert live[-1]["seq"] == 3 and "snapshot" not in live[-1]
    await ws.close()


async def test_bad_frames_get_an_error_and_leave_the_connection_and_others_alone(
        settings, gateway, publisher, products):
    port = gateway.port
    bad, other = await open_client(settings, port), await open_client(settings, port)
    frames = ["not json", "[1, 2]", '{"action":"dance"}', '{"type":"product"}',
              '{"action":"subscribe","type":"planet","symbol":"X"}',
              '{"action":"subscribe","type":"product","symbol":"NOPE"}',
              '{"action":"subscribe","type":"product","symbol":"' + products[0] + '","since":-1}',
              orjson.dumps({"action": "ping", "pad": "x" * (settings.socket_max_message_bytes + 10)}).decode(),
              b"\xff\x00binary garbage"]
    for frame in frames:
        await bad.send(frame)
        err = await recv(bad)
        assert err["event"] == "error" and err["message"], (frame[:40], err)
    await bad.send('{"action":"ping"}')
    assert (await recv(bad))["event"] == "pong"
    msg = publisher.publish("underlying_update", products[1])
    for ws in (other, bad):
        got = await recv(ws)
        assert (got["room"], got["data"]) == ("general", msg)
    await bad.close()
    await other.close()


async def test_unknown_symbol_is_an_error_and_a_symbol_the_sink_has_seen_is_known(settings, gateway, publisher):
    ws = await open_client(settings, gateway.port)
    err = await subscribe(ws, "chain", "ZZUNSEEN1")
    assert err["event"] == "error" and "unknown symbol" in err["message"]
    seen = "SEEN" + settings.products[0][1:7]
    publisher.publish("chain_update", seen)  # adds it to the Redis `products` set
    gateway._known_at = 0  # don't wait for the cache to age
    assert (await subscribe(ws, "chain", seen))["event"] == "subscribed"
    await ws.close()


async def test_ping_pong_and_http_endpoints(settings, gateway):
    ws = await open_client(settings, gateway.port)
    await ws.send('{"action":"ping"}')
    assert (await recv(ws))["event"] == "pong"
    await asyncio.wait_for(await ws.ping(), 5)  # websocket-level heartbeat answered
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gateway.port}") as http:
        health = await http.get("/health")
        assert health.status_code == 200 and health.json() == {"status": "healthy", "service": "socket"}
        stats = (await http.get("/stats")).json()
        assert stats["connections"] == 1 and stats["rooms"] == {"general": 1} and stats["redis_subscribed"]
        assert (await http.get("/nope")).status_code == 404
    await ws.close()


async def test_dead_connection_is_detected_by_heartbeat(stack, settings):
    from tests.socket.conftest import running_gateway

    quick = settings.model_copy(update={"socket_ping_interval": 0.2, "socket_ping_timeout": 0.3})
    async with running_gateway(quick) as gw:
        # A peer that completes the handshake and then never reads or answers pings.
        reader, writer = await asyncio.open_connection("127.0.0.1", gw.port)
        writer.write((f"GET /ws?token={token(quick)} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n").encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 101")
        async with asyncio.timeout(20):
            while not gw.hub.clients:
                await asyncio.sleep(0.05)
            while gw.hub.clients:  # dropped once the pong is overdue
                await asyncio.sleep(0.05)
        writer.close()
