"""The WebSocket protocol (DESIGN.md, "WebSocket"): client commands in, server events out.

Client → server (JSON text or binary frames, at most `socket_max_message_bytes`):
  {"action": "auth", "token": "<access JWT>"}          (first message, unless ?token= was given)
  {"action": "subscribe", "type": "product"|"chain", "symbol": "NIFTY"[, "since": N, "epoch": "..."]}
  {"action": "unsubscribe", "type": "product"|"chain", "symbol": "NIFTY"}
  {"action": "ping"}
Server → client: {"event": "connected"|"subscribed"|"unsubscribed"|"pong"|"error"|"resync"|
"skipped", ...} and data events {"room", "seq", "epoch", "event", "data"} exactly as the Redis
sink published them (encoded once, sent to every client of the room as the same bytes).
"""
from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from typing import Any

import orjson

GENERAL = "general"
ROOM_TYPES = ("product", "chain")
# Close codes: 4401 = HTTP 401 in the private 4000-4999 range, as Centrifugo and others do.
CLOSE_UNAUTHORIZED = 4401
CLOSE_SLOW = 4408  # a slow consumer disconnected (socket_slow_policy=disconnect)
CLOSE_GOING_AWAY = 1001

_SYMBOL = re.compile(r"^[A-Z0-9][A-Z0-9._&-]{0,63}$")  # what the sink accepts as a product
# The sink writes the envelope's header fields first and always in this order (sinks/redis_sink.py);
# reading them with a regex spares parsing an 18 kB chain for routing.
_HEADER = re.compile(rb'^\{"room":"([^"]+)","seq":(\d+),"epoch":"([^"]*)","event":"([^"]+)","data":')


class ProtocolError(ValueError):
    """A client frame we cannot act on; str() is what the client is told."""


@dataclass(frozen=True, slots=True)
class Auth:
    token: str


@dataclass(frozen=True, slots=True)
class Subscribe:
    room: str
    symbol: str
    since: int | None = None
    epoch: str | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    room: str
    symbol: str


@dataclass(frozen=True, slots=True)
class Ping:
    pass


Command = Auth | Subscribe | Unsubscribe | Ping


def room_name(kind: str, symbol: str) -> str:
    return f"{kind}:{symbol}"


def parse_command(frame: str | bytes, max_bytes: int) -> Command:
    """One client frame → a command, or ProtocolError saying what is wrong with it."""
    if len(frame) > max_bytes:
        raise ProtocolError(f"message too large ({len(frame)} bytes, at most {max_bytes})")
    try:
        msg = orjson.loads(frame)
    except orjson.JSONDecodeError:
        raise ProtocolError("message is not valid JSON") from None
    if not isinstance(msg, dict):
        raise ProtocolError("message must be a JSON object")
    action = msg.get("action")
    if action == "ping":
        return Ping()
    if action == "auth" or (action is None and "token" in msg):
        token = msg.get("token")
        if not isinstance(token, str) or not token:
            raise ProtocolError("auth needs a token")
        return Auth(token)
    if action in ("subscribe", "unsubscribe"):
        kind, symbol = msg.get("type"), msg.get("symbol")
        if kind not in ROOM_TYPES:
            raise ProtocolError(f"type must be one of {', '.join(ROOM_TYPES)}")
        if not isinstance(symbol, str) or not _SYMBOL.match(symbol.upper()):
            raise ProtocolError("symbol must be a product name such as NIFTY")
        symbol = symbol.upper()
        if action == "unsubscribe":
            return Unsubscribe(room_name(kind, symbol), symbol)
        since, epoch = msg.get("since"), msg.get("epoch")
        if since is not None and (isinstance(since, bool) or not isinstance(since, int) or since < 0):
            raise ProtocolError("since must be a non-negative integer (the last seq received)")
        if epoch is not None and not isinstance(epoch, str):
            raise ProtocolError("epoch must be a string")
        return Subscribe(room_name(kind, symbol), symbol, since, epoch)
    if action is None:
        raise ProtocolError("missing action")
    raise ProtocolError(f"unknown action {str(action)[:40]!r}")


def event(name: str, **fields: Any) -> bytes:
    """A server event as JSON bytes."""
    return orjson.dumps({"event": name, **fields})


def text_frame(payload: bytes) -> bytes:
    """An unmasked, unfragmented WebSocket text frame (RFC 6455 5.2): what a server sends.

    Built once per published message and written as-is to every client of the room, so the
    cost per delivery is one transport write (connections run without compression)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65_536:
        head = struct.pack("!BBH", 0x81, 126, n)
    else:
        head = struct.pack("!BBQ", 0x81, 127, n)
    return head + payload


@dataclass(frozen=True, slots=True)
class Envelope:
    """A message published by the Redis sink, ready to deliver."""

    room: str
    seq: int
    epoch: str
    event: str
    key: str  # what the message is the latest value of, within the room (skip-ahead keeps one per key)
    payload: bytes
    frame: bytes


def conflation_key(event_name: str, data: dict) -> str:
    product = data.get("product") or ""
    expiry = data.get("expiry") or ""
    return f"{event_name}|{product}|{expiry}"


def parse_envelope(raw: bytes) -> Envelope:
    """A sink envelope → Envelope; ValueError if it is not one."""
    m = _HEADER.match(raw)
    if m is not None:
        room, seq, epoch, name = (m.group(1).decode(), int(m.group(2)), m.group(3).decode(),
                                  m.group(4).decode())
        product, expiry = _product_expiry(raw, m.end())
        key = f"{name}|{product}|{expiry}"
    else:  # another field order: parse it all
        msg = orjson.loads(raw)
        if not isinstance(msg, dict) or not isinstance(msg.get("data"), dict):
            raise ValueError("not an envelope")
        room, seq, epoch, name = str(msg["room"]), int(msg["seq"]), str(msg["epoch"]), str(msg["event"])
        key = conflation_key(name, msg["data"])
    return Envelope(room, seq, epoch, name, key, raw, text_frame(raw))


_PRODUCT = re.compile(rb'"product":"([^"]*)"')
_EXPIRY = re.compile(rb'"expiry":"([^"]*)"')


def _product_expiry(raw: bytes, start: int) -> tuple[str, str]:
    """The data's top-level product and expiry. Records put them before their nested arrays
    (calls/puts hold quotes with their own product/expiry, identical for a chain)."""
    p = _PRODUCT.search(raw, start)
    e = _EXPIRY.search(raw, start)
    return (p.group(1).decode() if p else "", e.group(1).decode() if e else "")
