"""Helpers for the WebSocket gateway tests: an in-process gateway on a free port against the
session's real Redis, real `websockets` clients, and envelopes published by the sink's own code.

Every test uses product names of its own (pub/sub channels are shared by all Redis dbs)."""
from __future__ import annotations

import asyncio
import contextlib
from typing import AsyncIterator, Callable

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect

from deltastream.settings import Settings
from gateways.common.tokens import issue_token
from gateways.socket.server import SocketGateway
from tests.socket.publish import SinkPublisher
from tests.stack import Stack

SECRET = "socket-tests-secret-0123456789abcdef"


@pytest.fixture
def products(unique: str) -> list[str]:
    return [f"P{unique[:6].upper()}", f"Q{unique[:6].upper()}"]


@pytest.fixture
def settings(stack: Stack, products: list[str]) -> Settings:
    return stack.with_settings(jwt_secret=SECRET, products=products, socket_ping_interval=5,
                               socket_ping_timeout=5, socket_auth_timeout=2)


@pytest.fixture
def publisher(settings: Settings, unique: str):
    pub = SinkPublisher(settings, f"socket-{unique}")
    yield pub
    pub.close()


def token(settings: Settings, user: str = "alice") -> str:
    return issue_token(settings, user, "access")[0]


@contextlib.asynccontextmanager
async def running_gateway(settings: Settings) -> AsyncIterator[SocketGateway]:
    gateway = SocketGateway(settings)
    await gateway.start(host="127.0.0.1", port=0)
    try:
        yield gateway
    finally:
        await gateway.stop()


@pytest.fixture
async def gateway(settings: Settings) -> AsyncIterator[SocketGateway]:
    async with running_gateway(settings) as gw:
        yield gw


def url(port: int, tok: str | None = None) -> str:
    return f"ws://127.0.0.1:{port}/ws" + (f"?token={tok}" if tok else "")


async def open_client(settings: Settings, port: int, **kwargs) -> ClientConnection:
    """A connected, authenticated client (the `connected` event already read)."""
    ws = await connect(url(port, token(settings)), **kwargs)
    hello = await recv(ws)
    assert hello["event"] == "connected", hello
    return ws


async def recv(ws: ClientConnection, timeout: float = 10) -> dict:
    return orjson.loads(await asyncio.wait_for(ws.recv(), timeout))


async def recv_until(ws: ClientConnection, done: Callable[[dict], bool], timeout: float = 20) -> list[dict]:
    """Every message up to and including the first one `done` accepts."""
    out: list[dict] = []
    async with asyncio.timeout(timeout):
        while True:
            msg = orjson.loads(await ws.recv())
            out.append(msg)
            if done(msg):
                return out


async def subscribe(ws: ClientConnection, kind: str, symbol: str, **extra) -> dict:
    """Subscribe and return the `subscribed` (or `resync`) event, snapshot messages not read."""
    await ws.send(orjson.dumps({"action": "subscribe", "type": kind, "symbol": symbol, **extra}).decode())
    msg = await recv(ws)
    while msg["event"] not in ("subscribed", "resync", "error"):
        msg = await recv(ws)
    return msg


async def published(gateway: SocketGateway, count: int, timeout: float = 20) -> None:
    """Wait until the gateway received `count` envelopes from Redis in total."""
    async with asyncio.timeout(timeout):
        while gateway.hub.stats.published < count:
            await asyncio.sleep(0.01)
