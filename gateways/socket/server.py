"""The WebSocket gateway: `/ws` (protocol.py), `GET /health` and `GET /stats` on the same port.

Built on the `websockets` asyncio server: no per-message compression (a published message is
framed once and the same bytes go to every client of its room), websocket ping/pong
heartbeats to detect dead peers, and on SIGTERM every client is closed with 1001.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

import orjson
from redis.exceptions import RedisError
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from deltastream.clients import async_redis_client
from deltastream.settings import Settings
from gateways.common.tokens import TokenClaims, TokenError, decode_token
from gateways.socket import resume
from gateways.socket.fanout import Fanout
from gateways.socket.protocol import (CLOSE_UNAUTHORIZED, GENERAL, Auth, Ping, ProtocolError, Subscribe,
                                      Unsubscribe, event, parse_command)
from gateways.socket.rooms import Client, Hub

log = logging.getLogger("deltastream.socket")

WS_PATH = "/ws"
WRITE_HIGH = 256 * 1024  # bytes buffered per client (beyond the kernel's) before its queue is used
KNOWN_REFRESH_SECONDS = 5.0
REDIS_READS = 16  # concurrent snapshot/history reads (each holds a pooled Redis connection)


class SocketGateway:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.hub = Hub()
        self.redis = None
        self.server: Server | None = None
        self.fanout: Fanout | None = None
        self._fanout_task: asyncio.Task | None = None
        self._known: set[str] = set(settings.products)
        self._known_at = 0.0
        self.started_at = time.time()
        self._reads = asyncio.Semaphore(REDIS_READS)

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self, host: str | None = None, port: int | None = None) -> None:
        s = self.settings
        self.redis = async_redis_client(s)
        self.reader = resume.RoomReader(self.redis)
        self.fanout = Fanout(self.redis, self.hub, self.reader)
        self._fanout_task = asyncio.create_task(self.fanout.run(), name="socket-fanout")
        # Clients join rooms only once the process listens to the channels (no gap on resume).
        await asyncio.wait_for(self.fanout.subscribed.wait(), timeout=60)
        self.server = await serve(
            self.handler, host or s.host, s.socket_port if port is None else port,
            process_request=self.http, compression=None,
            # Oversized frames up to 16x the limit get an `error` event; beyond, close 1009.
            max_size=max(16 * s.socket_max_message_bytes, 1 << 20),
            ping_interval=s.socket_ping_interval, ping_timeout=s.socket_ping_timeout,
            write_limit=(WRITE_HIGH, WRITE_HIGH // 4), close_timeout=5)
        log.info("socket gateway on ws://%s:%d%s", host or s.host, self.port, WS_PATH)

    @property
    def port(self) -> int:
        assert self.server is not None
        return self.server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop accepting, close every client with 1001 (going away), release Redis."""
        if self.server is not None:
            self.server.close(close_connections=True)  # code 1001
            await self.server.wait_closed()
        if self._fanout_task is not None:
            self._fanout_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._fanout_task
        if self.redis is not None:
            await self.redis.aclose()

    # -- HTTP on the same port ----------------------------------------------------------------
    def http(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == WS_PATH:
            return None  # the WebSocket handshake goes on
        if path == "/health":
            return _json(connection, HTTPStatus.OK, {"status": "healthy", "service": "socket"})
        if path == "/stats":
            return _json(connection, HTTPStatus.OK, self.stats())
        return _json(connection, HTTPStatus.NOT_FOUND, {"detail": "Not Found"})

    def stats(self) -> dict:
        return {"service": "socket", "uptime_seconds": round(time.time() - self.started_at, 1),
                "redis_subscribed": bool(self.fanout and self.fanout.subscribed.is_set()),
                "redis_reconnects": self.fanout.reconnects if self.fanout else 0, **self.hub.snapshot()}

    # -- one connection ------------------------------------------------------------------------
    async def handler(self, ws: ServerConnection) -> None:
        claims = await self._authenticate(ws)
        if claims is None:
            return
        s = self.settings
        client = Client(ws, claims.sub, self.hub, s.socket_queue_size, s.socket_slow_policy, WRITE_HIGH)
        expiry = asyncio.get_running_loop().call_later(
            max(0.0, claims.exp.timestamp() - time.time()),
            lambda: asyncio.ensure_future(ws.close(CLOSE_UNAUTHORIZED, "token expired")))
        try:
            # `connected` before joining general: the batch in flight (flushed by this send) was
            # dispatched before the client was there, and must not reach it ahead of `connected`.
            client.send(event("connected", user=claims.sub, rooms=[GENERAL]))
            self.hub.add(client)
            async for frame in ws:
                await self._command(client, frame)
        except ConnectionClosed:
            pass
        finally:
            expiry.cancel()
            self.hub.remove(client)

    async def _authenticate(self, ws: ServerConnection) -> TokenClaims | None:
        """The access token from `?token=` or the first message; else error event + close 4401."""
        query = parse_qs(urlsplit(ws.request.path).query)
        token = query.get("token", [None])[0]
        try:
            if token is None:
                try:
                    first = await asyncio.wait_for(ws.recv(), self.settings.socket_auth_timeout)
                except asyncio.TimeoutError:
                    raise TokenError("no token: send ?token= or {\"action\":\"auth\",\"token\":...} first") from None
                try:
                    cmd = parse_command(first, self.settings.socket_max_message_bytes)
                except ProtocolError as exc:
                    raise TokenError(f"first message must authenticate: {exc}") from None
                if not isinstance(cmd, Auth):
                    raise TokenError("first message must be {\"action\":\"auth\",\"token\":...}")
                token = cmd.token
            return decode_token(self.settings, token, "access")
        except TokenError as exc:
            with contextlib.suppress(ConnectionClosed):
                await ws.send(event("error", code=CLOSE_UNAUTHORIZED, message=str(exc)), text=True)
                await ws.close(CLOSE_UNAUTHORIZED, str(exc)[:120])
            return None
        except ConnectionClosed:
            return None

    async def _command(self, client: Client, frame: str | bytes) -> None:
        try:
            cmd = parse_command(frame, self.settings.socket_max_message_bytes)
        except ProtocolError as exc:
            client.send(event("error", message=str(exc)))
            return
        if isinstance(cmd, Ping):
            client.send(event("pong", ts=time.time()))
        elif isinstance(cmd, Subscribe):
            if not await self._is_known(cmd.symbol):
                client.send(event("error", message=f"unknown symbol {cmd.symbol!r}", room=cmd.room))
                return
            try:
                async with self._reads:  # a reconnect storm must not open a Redis connection per client
                    await resume.subscribe(client, self.hub, self.reader, cmd.room, cmd.since, cmd.epoch)
            except RedisError as exc:
                log.warning("subscribe %s failed: %s", cmd.room, exc)
                client.send(event("error", message="subscription temporarily unavailable", room=cmd.room))
        elif isinstance(cmd, Unsubscribe):
            self.hub.leave(client, cmd.room)
            client.send(event("unsubscribed", room=cmd.room))
        else:  # Auth again
            client.send(event("error", message="already authenticated"))

    async def _is_known(self, symbol: str) -> bool:
        """A configured product, or one the sink has seen (Redis `products`, cached briefly)."""
        if symbol in self._known:
            return True
        now = time.monotonic()
        if now - self._known_at > KNOWN_REFRESH_SECONDS:
            self._known_at = now
            try:
                seen = await self.redis.smembers("products")
            except RedisError:
                return False
            self._known = set(self.settings.products) | {p.decode() for p in seen}
        return symbol in self._known


def _json(connection: ServerConnection, status: HTTPStatus, body: dict) -> Response:
    response = connection.respond(status, "")
    response.body = orjson.dumps(body)
    del response.headers["Content-Type"]
    del response.headers["Content-Length"]
    response.headers["Content-Type"] = "application/json"
    response.headers["Content-Length"] = str(len(response.body))
    return response


async def serve_until(settings: Settings, stop: asyncio.Event, started: asyncio.Event | None = None,
                      port: int | None = None) -> SocketGateway:
    gateway = SocketGateway(settings)
    await gateway.start(port=port)
    if started is not None:
        started.set()
    try:
        await stop.wait()
    finally:
        await gateway.stop()
    return gateway


def run(settings: Settings) -> None:
    """`deltastream serve socket`: serve until SIGTERM / SIGINT, then close clients with 1001."""
    from deltastream.runtime.bootstrap import wait_for_stack

    wait_for_stack(settings, ("redis",), create_topics=False)
    logging.getLogger("websockets.server").setLevel(logging.WARNING)  # not a line per connection

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_until(settings, stop)
        log.info("socket gateway stopped")

    asyncio.run(main())
