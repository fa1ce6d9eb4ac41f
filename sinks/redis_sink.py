"""The Redis sink: latest values, product/expiry sets and the live fan-out (docs/storage.md).

A batch (in chunks of at most `CHUNK_RECORDS` records / `CHUNK_BYTES` bytes) is applied by
one Lua script, which Redis runs atomically, like MULTI/EXEC:

* it reads the offsets already applied (hash `sink:offsets:{group}`, field
  `{topic}:{partition}`); if the chunk holds a record at or below them it writes nothing
  and returns them, and the sink sends the chunk again without those records. So a
  redelivered batch (a crash between the write and the Kafka commit, a retry after a lost
  reply) changes nothing: no second PUBLISH, no gap or jump in `seq`; and the script never
  compares offsets per record;
* sets `latest:*` keys (TTL `redis_latest_ttl_seconds`) unless the key holds a newer
  record (event time, then enriched over raw ticks; OHLC: window start, then event time);
* INCRements `seq:{room}` per envelope, creates `epoch:{room}` with a room's first seq,
  PUBLISHes `{"room","seq","epoch","event","data"}` and appends it to `history:{room}`
  (stream id `{seq}-0`, field `env`, trimmed to ~`redis_history_len`). Envelopes come as
  a route index (channel, event, rooms: sent once per chunk) and the data, length-prefixed
  (`struct.unpack` in Lua): per envelope and room the script builds one string and makes
  the two calls, nothing else (~6 us of Redis CPU per small record before: ~7);
* adds products and expiries to `products` / `expiries:{product}`;
* stores the chunk's last offsets.
Two chunks are in flight on one connection: while Redis runs chunk k, chunk k+1 waits in its
socket buffer, so Redis does not idle while the sink reads a reply and prepares the next
chunk. A chunk sent behind others carries the offsets Redis holds once they all applied
(per partition, the last of the latest chunk with it) and applies only if Redis holds
exactly those; else it returns "not applied" and goes again, in order, once the chunks
before it are settled. So no chunk applies past a gap.
A script rather than a MULTI/EXEC pipeline because the envelope must carry the seq the
INCR returns, and because redis-py spends ~25 us per pipelined command in Python (measured
before hiredis was installed; still several us with it): one script call per chunk is what
makes 50k records/s possible.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import struct
import time
from collections import deque
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, NamedTuple

from redis.exceptions import (BusyLoadingError, ConnectionError as RedisConnectionError,
                              NoScriptError, ResponseError, TimeoutError as RedisTimeoutError)

from deltastream.clients import redis_client
from deltastream.settings import Settings
from schemas.topics import (ANALYTICS_CHAIN, ANALYTICS_OHLC, ANALYTICS_UNDERLYING,
                            ANALYTICS_VOL_SURFACE, MARKET_OPTION_CHAINS, MARKET_UNDERLYING)
from sinks.base import Batch, Rejected, Sink, SinkRecord, TopicPartition

log = logging.getLogger(__name__)

# The sink reads in two lanes, each with a consumer and a writer of its own (`sinks.run`):
# the topics whose records are published to socket rooms, and those that only set latest
# values. A fetch from the embedded broker costs time for every partition it names, so the
# live lane's records do not wait for the others' (or for their writes).
LIVE_TOPICS: tuple[str, ...] = (MARKET_OPTION_CHAINS, ANALYTICS_CHAIN, ANALYTICS_UNDERLYING)
STATE_TOPICS: tuple[str, ...] = (MARKET_UNDERLYING, ANALYTICS_VOL_SURFACE, ANALYTICS_OHLC)
REDIS_TOPICS: tuple[str, ...] = LIVE_TOPICS + STATE_TOPICS
ORDER_KEY = "sink:latest_order"  # latest key -> "n1:n2" order of the record it holds
# One script call blocks Redis for its duration (~3-5 ms at this size); a batch (2000 by
# default) goes in several, each prepared while Redis runs the one before.
CHUNK_RECORDS = 500
CHUNK_BYTES = 4 << 20
IN_FLIGHT = 2  # script calls sent ahead on the writer's connection
APPLIED, STALE, NOT_AFTER = 0, 1, 2  # the script's verdict on a chunk

# Channels and events of the socket gateway (docs/storage.md).
CH_UNDERLYING, EV_UNDERLYING = "enriched:underlying", "underlying_update"
CH_SUMMARY, EV_SUMMARY = "enriched:chain_summary", "chain_summary"
CH_CHAIN, EV_CHAIN = "enriched:option_chain", "chain_update"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_EPOCH_DAY = dt.date(1970, 1, 1).toordinal()
_NAME = re.compile(r"^[A-Z0-9][A-Z0-9._&-]{0,63}$")  # products and option symbols
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTERVALS = {"1m", "5m", "15m"}
RS, US = b"\x1e", b"\x1f"  # never inside valid JSON (raw control characters are not allowed)
_HEAD = struct.Struct(">HI").pack  # an envelope's route index and data length (struct.unpack in Lua)
_STALE_ATTEMPTS = 5

_SCRIPT = r"""
local call, find, sub, tonumber, fmt = redis.call, string.find, string.sub, tonumber, string.format
local sunpack = struct.unpack
local US, RS = '\31', '\30'
-- Entries are fields separated by US and terminated by RS; the last field is the rest.
local function each(blob, n, fn)
  local pos, len = 1, #blob
  while pos <= len do
    local f = {}
    for k = 1, n - 1 do
      local j = find(blob, US, pos, true)
      f[k] = sub(blob, pos, j - 1)
      pos = j + 1
    end
    local j = find(blob, RS, pos, true)
    f[n] = sub(blob, pos, j - 1)
    pos = j + 1
    fn(f)
  end
end

local offsets_key, order_key, new_epoch = ARGV[1], ARGV[2], ARGV[3]
local ttl, maxlen = tonumber(ARGV[4]), tonumber(ARGV[5])

-- the chunk's partitions (field, last offset, lowest record offset or empty) and what is
-- already applied of them; a chunk reaching back into that is sent again without it
local parts, names, applied, before, stale = {}, {}, {}, {}, false
each(ARGV[6], 3, function(f) parts[#parts + 1] = f; names[#names + 1] = f[1] end)
if #names > 0 then
  local stored = call('HMGET', offsets_key, unpack(names))
  for i = 1, #names do
    applied[i] = tonumber(stored[i]) or -1
    before[i] = fmt('%d', applied[i])
    local low = tonumber(parts[i][3])
    if low and low <= applied[i] then stale = true end
  end
end
-- a chunk sent behind others (pipelined) applies only if they did: the offsets they store
-- must be there (otherwise Redis holds less, or more: a redelivery)
if #ARGV[11] > 0 then
  local fields, want = {}, {}
  each(ARGV[11], 2, function(f) fields[#fields + 1] = f[1]; want[#want + 1] = f[2] end)
  local held = call('HMGET', offsets_key, unpack(fields))
  for i = 1, #fields do
    if held[i] ~= want[i] then return {0, 0, before, 2} end
  end
end
if stale then return {0, 0, before, 1} end

-- latest values: key, n1, n2, value; kept unless the key holds a newer record
local latest = 0
each(ARGV[7], 4, function(f)
  local key, n1, n2 = f[1], tonumber(f[2]), tonumber(f[3])
  if call('EXISTS', key) == 1 then
    local cur = call('HGET', order_key, key)
    if cur then
      local sep = find(cur, ':', 1, true)
      local c1, c2 = tonumber(sub(cur, 1, sep - 1)), tonumber(sub(cur, sep + 1))
      if n1 < c1 or (n1 == c1 and n2 < c2) then return end
    end
  end
  call('SET', key, f[4], 'EX', ttl)
  call('HSET', order_key, key, f[2] .. ':' .. f[3])
  latest = latest + 1
end)

-- sets: op, key, arg, member (S: SADD, Z: ZADD arg, T: ZREMRANGEBYSCORE < arg)
each(ARGV[8], 4, function(f)
  local op = f[1]
  if op == 'S' then call('SADD', f[2], f[4])
  elseif op == 'Z' then call('ZADD', f[2], f[3], f[4])
  else call('ZREMRANGEBYSCORE', f[2], '-inf', '(' .. f[3]) end
end)

-- routes: channel, event, rooms (comma-separated); per room its state
-- {seq, envelope head, history key, epoch} and the envelope's middle for this event
local rooms, routes = {}, {}
each(ARGV[9], 3, function(f)
  local route = {f[1]}
  for room in string.gmatch(f[3], '[^,]+') do
    local st = rooms[room]
    if not st then
      local seq = tonumber(call('GET', 'seq:' .. room))
      local epoch = call('GET', 'epoch:' .. room)
      if not seq or not epoch then  -- a new room, or its history was lost: a new epoch
        seq, epoch = 0, new_epoch
        call('SET', 'epoch:' .. room, epoch)
        call('DEL', 'history:' .. room)
      end
      st = {seq, '{"room":"' .. room .. '","seq":', 'history:' .. room, epoch}
      rooms[room] = st
    end
    route[#route + 1] = st
    route[#route + 1] = ',"epoch":"' .. st[4] .. '","event":"' .. f[2] .. '","data":'
  end
  routes[#routes + 1] = route
end)

-- envelopes, in consumed order: route index (2 bytes), length of the data (4 bytes), data
local blob, published, pos = ARGV[10], 0, 1
local len = #blob
while pos <= len do
  local r, data
  r, data, pos = sunpack('>HI4c0', blob, pos)
  local route = routes[r]
  local channel = route[1]
  for k = 2, #route, 2 do
    local st = route[k]
    local seq = st[1] + 1
    st[1] = seq
    local s = fmt('%d', seq)  -- cheaper than seq .. '' (%.14g)
    local env = st[2] .. s .. route[k + 1] .. data .. '}'
    call('PUBLISH', channel, env)
    call('XADD', st[3], s, 'env', env)  -- id "{seq}" is "{seq}-0"
    published = published + 1
  end
end
for room, st in pairs(rooms) do
  call('SET', 'seq:' .. room, fmt('%d', st[1]))
  call('XTRIM', st[3], 'MAXLEN', '~', maxlen)
end

-- the chunk's offsets, in the same atomic step as its effects
for i, f in ipairs(parts) do
  if tonumber(f[2]) > applied[i] then call('HSET', offsets_key, f[1], f[2]) end
end
return {latest, published, before, 0}
"""


_us_of: dict[dt.datetime, int] = {}  # event times repeat (the fast decoder shares them)


def _us(when: dt.datetime) -> int:
    try:
        return _us_of[when]
    except KeyError:
        pass
    d = when - _EPOCH
    us = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    if len(_us_of) >= 50_000:
        _us_of.clear()
    _us_of[when] = us
    return us


_US_PER_DAY = 86_400_000_000


@lru_cache(maxsize=4096)
def _epoch_day(expiry: str) -> int:
    return dt.date.fromisoformat(expiry).toordinal() - _EPOCH_DAY


@lru_cache(maxsize=65_536)
def _checked_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"not a product or symbol: {value!r}")
    return value


def _name(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not a product or symbol: {value!r}")
    return _checked_name(value)


@lru_cache(maxsize=4096)
def _checked_expiry(value: str) -> str:
    if not _DATE.match(value):
        raise ValueError(f"not an expiry date: {value!r}")
    _epoch_day(value)  # ValueError for a date that does not exist
    return value


def _expiry(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"not an expiry date: {value!r}")
    return _checked_expiry(value)


class Effects(NamedTuple):
    """What one record does in Redis (built with `_new`: a plain tuple.__new__, no Python-level
    constructor, as this runs once per record)."""

    latest: str | None
    n1: int  # the record's order for its latest key: (n1, n2) compared as a pair
    n2: int
    product: str
    expiry: str | None = None
    publish: bytes | None = None  # US-joined channel, event, comma-separated rooms


_new = tuple.__new__  # _new(Effects, (...)): no Python-level constructor per record


@lru_cache(maxsize=4096)
def _publish(channel: str, event: str, rooms: str) -> bytes:
    return US.join((channel.encode(), event.encode(), rooms.encode()))


def _cached(build: Callable[..., tuple]) -> Callable[..., tuple]:
    """`build(*names)` memoised: the checks and key strings of a product (and expiry) are
    the same for every record of it. Only valid names get in (build raises otherwise)."""
    memo: dict[tuple, tuple] = {}

    def get(*names: object) -> tuple:
        try:
            return memo[names]
        except KeyError:
            pass
        except TypeError:  # unhashable: build says why
            return build(*names)
        value = build(*names)
        if len(memo) < 65_536:
            memo[names] = value
        return value
    return get


def _underlying(raw: bool) -> Callable[[SinkRecord], Effects]:
    rank = 0 if raw else 1

    @_cached
    def keys(p: object) -> tuple:
        p = _name(p)
        # Only enriched ticks are published (one underlying_update per tick).
        return (f"latest:underlying:{p}", p,
                None if raw else _publish(CH_UNDERLYING, EV_UNDERLYING, f"general,product:{p}"))

    def effects(r: SinkRecord) -> Effects:
        key, p, publish = keys(r.data["product"])
        # Raw and enriched ticks share the key; at equal event time the enriched one wins.
        when = r.times["timestamp"]
        n1 = _us_of.get(when) or _us(when)
        return _new(Effects, (key, n1, rank, p, None, publish))
    return effects


@_cached
def _chain_keys(p: object, e: object) -> tuple:
    p, e = _name(p), _expiry(e)
    return f"latest:chain:{p}:{e}", p, e, _publish(CH_CHAIN, EV_CHAIN, f"chain:{p}")


def _chain(r: SinkRecord) -> Effects:
    d = r.data
    key, p, e, publish = _chain_keys(d["product"], d["expiry"])
    when = r.times["timestamp"]
    return _new(Effects, (key, _us_of.get(when) or _us(when), 0, p, e, publish))


@_cached
def _analytics_keys(p: object, e: object) -> tuple:
    p, e = _name(p), _expiry(e)
    return f"latest:analytics:{p}:{e}", p, e, _publish(CH_SUMMARY, EV_SUMMARY, f"general,product:{p}")


def _analytics(r: SinkRecord) -> Effects:
    d = r.data
    key, p, e, publish = _analytics_keys(d["product"], d["expiry"])
    when = r.times["timestamp"]
    return _new(Effects, (key, _us_of.get(when) or _us(when), 0, p, e, publish))


def _surface(r: SinkRecord) -> Effects:
    p = _name(r.data["product"])
    return _new(Effects, (f"latest:vol_surface:{p}", _us(r.times["timestamp"]), 0, p, None, None))


def _ohlc(r: SinkRecord) -> Effects:
    p, interval = _name(r.data["product"]), r.data["interval"]
    if interval not in _INTERVALS:
        raise ValueError(f"unknown interval {interval!r}")
    instrument = _name(r.data.get("symbol") or p)
    # The latest bar is the latest window; within a window, the latest update.
    return _new(Effects, (f"latest:ohlc:{instrument}:{interval}", _us(r.times["start_time"]),
                          _us(r.times["timestamp"]), p, None, None))


ROUTES: dict[str, Callable[[SinkRecord], Effects]] = {
    MARKET_UNDERLYING: _underlying(raw=True),
    ANALYTICS_UNDERLYING: _underlying(raw=False),
    MARKET_OPTION_CHAINS: _chain,
    ANALYTICS_CHAIN: _analytics,
    ANALYTICS_VOL_SURFACE: _surface,
    ANALYTICS_OHLC: _ohlc,
}


@dataclass
class RedisStats:
    records: int = 0  # records in written batches
    skipped: int = 0  # already applied (redelivered), recognised by the stored offsets
    latest: int = 0  # latest:* keys set
    published: int = 0  # envelopes published (one per room)
    scripts: int = 0
    seconds: float = 0.0  # waiting for script replies


class _InFlight(NamedTuple):
    """A script call sent, its reply not read yet."""

    chunk: list[tuple[SinkRecord, Effects]]
    offsets: dict[TopicPartition, int] | None  # the batch's offsets (the last chunk only)
    last: dict[TopicPartition, int]  # the offsets it stores when applied


def _held(last: dict[TopicPartition, int], reply: list) -> dict[TopicPartition, int]:
    """The offsets Redis held of a stale chunk's partitions (in the order of its `last`)."""
    return {tp: int(v) for tp, v in zip(last, reply[2])}


class OffsetsMoving(RuntimeError):
    """The offsets stored with the data moved under every attempt: another writer is active."""


class RedisSink(Sink):
    name = "redis"

    def __init__(self, settings: Settings, group_id: str, client=None) -> None:
        self.settings = settings
        self.client = client or redis_client(settings, socket_timeout=30)
        self.offsets_key = f"sink:offsets:{group_id}"
        self._script = self.client.register_script(_SCRIPT)
        self.stats = RedisStats()

    def start(self) -> None:
        self.client.script_load(_SCRIPT)

    # -- offsets kept with the data -------------------------------------------------------
    def stored_offsets(self, partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        tps = list(partitions)
        if not tps:
            return {}
        values = self.client.hmget(self.offsets_key, [f"{t}:{p}" for t, p in tps])
        return {tp: int(v) for tp, v in zip(tps, values) if v is not None}

    def forget_offsets(self, partitions: Iterable[TopicPartition]) -> None:
        fields = [f"{t}:{p}" for t, p in partitions]
        if fields:
            self.client.hdel(self.offsets_key, *fields)

    # -- writing ----------------------------------------------------------------------------------
    def write(self, batch: Batch) -> list[Rejected]:
        rejected: list[Rejected] = []
        chunks: list[list[tuple[SinkRecord, Effects]]] = [[]]
        size = 0
        for record in batch.records:
            try:
                effects = ROUTES[record.topic](record)
            except (KeyError, ValueError, TypeError) as exc:
                rejected.append(Rejected(record, f"cannot map to Redis keys: {exc}", type(exc).__name__))
                continue
            if len(chunks[-1]) >= CHUNK_RECORDS or size >= CHUNK_BYTES:
                chunks.append([])
                size = 0
            chunks[-1].append((record, effects))
            size += len(record.value)
        self._apply_all(chunks, batch.offsets)
        self.stats.records += len(batch.records) - len(rejected)
        return rejected

    def _apply_all(self, chunks: list[list[tuple[SinkRecord, Effects]]],
                   offsets: dict[TopicPartition, int]) -> None:
        """The chunks in order, `IN_FLIGHT` script calls ahead on one connection (Redis runs
        them in the order sent). A chunk sent behind others is guarded by the offsets Redis
        holds once they all applied; when a chunk is stale (a redelivery) or its guard fails,
        what is in flight is read out and the chunks not applied go again one by one, in
        order. The last chunk also stores the offsets of records that went to the DLQ."""
        final = len(chunks) - 1
        pool = self.client.connection_pool
        conn = pool.get_connection()
        inflight: deque[_InFlight] = deque()
        redo: list[tuple[list[tuple[SinkRecord, Effects]], dict[TopicPartition, int] | None]] = []
        expected: dict[TopicPartition, int] = {}  # what Redis holds once the chunks sent applied
        try:
            for i, chunk in enumerate(chunks):
                chunk_offsets = offsets if i == final else None
                args, last = self._prepare(chunk, chunk_offsets, guard=expected)
                if not last:
                    continue
                conn.send_command("EVALSHA", self._script.sha, 0, *args)
                inflight.append(_InFlight(chunk, chunk_offsets, last))
                expected.update(last)
                if len(inflight) >= IN_FLIGHT:
                    self._read_next(conn, inflight, redo)  # the next chunk is prepared meanwhile
                if redo or i == final:
                    while inflight:
                        self._read_next(conn, inflight, redo)
                    for todo, todo_offsets in redo:  # in order, each waited for
                        self._apply(todo, todo_offsets)
                    redo.clear()
                    expected = {}  # nothing in flight: the next chunk needs no guard
        except BaseException:
            conn.disconnect()  # replies may be left unread on it
            raise
        finally:
            pool.release(conn)

    def _read_next(self, conn, inflight: deque[_InFlight], redo: list) -> None:
        """Read the oldest reply in flight; a chunk not applied goes on `redo`."""
        sent = inflight.popleft()
        started = time.perf_counter()
        try:
            reply = conn.read_response()
        except NoScriptError:  # Redis restarted without the script: loaded, and the chunk redone
            self.client.script_load(_SCRIPT)
            reply = None
        self.stats.seconds += time.perf_counter() - started
        verdict = NOT_AFTER if reply is None else self._count(reply)
        if verdict == APPLIED:
            # Its guard held: Redis has every record of the chunks before it (those on `redo`
            # were a redelivery of what it held).
            redo.clear()
        elif verdict == STALE:
            redo.append((self._without(sent.chunk, _held(sent.last, reply)), sent.offsets))
        else:
            redo.append((sent.chunk, sent.offsets))

    def _apply(self, chunk: list[tuple[SinkRecord, Effects]], offsets: dict[TopicPartition, int] | None) -> None:
        """One script call, waited for. If the chunk reaches back into what Redis already
        holds (a redelivery), the script writes nothing and returns the stored offsets: the
        chunk goes again without those records, so the script never checks offsets per record."""
        for _ in range(_STALE_ATTEMPTS):
            args, last = self._prepare(chunk, offsets)
            if not last:
                return
            started = time.perf_counter()
            reply = self._script(args=args)  # EVALSHA, loading the script if Redis lost it
            self.stats.seconds += time.perf_counter() - started
            if self._count(reply) == APPLIED:
                return
            chunk = self._without(chunk, _held(last, reply))
        raise OffsetsMoving(f"the offsets stored in {self.offsets_key} kept moving (another writer?)")

    def _count(self, reply: list) -> int:
        """Count a script's reply; its verdict."""
        n_latest, n_published, _, verdict = reply
        self.stats.scripts += 1
        if verdict == APPLIED:
            self.stats.latest += n_latest
            self.stats.published += n_published
        return verdict

    def _without(self, chunk: list[tuple[SinkRecord, Effects]],
                 applied: dict[TopicPartition, int]) -> list[tuple[SinkRecord, Effects]]:
        kept = [(r, fx) for r, fx in chunk if r.offset > applied[(r.kafka_topic, r.partition)]]
        self.stats.skipped += len(chunk) - len(kept)
        return kept

    def _prepare(self, chunk: list[tuple[SinkRecord, Effects]], offsets: dict[TopicPartition, int] | None,
                 guard: dict[TopicPartition, int] | None = None) -> tuple[list, dict[TopicPartition, int]]:
        """The script's arguments for the chunk, and its last offset per partition. `guard`:
        the offsets Redis must hold for it to apply (those of the chunks sent before it)."""
        last: dict[TopicPartition, int] = dict(offsets or {})
        low: dict[TopicPartition, int] = {}  # lowest record offset per partition

        # Per key only the newest record is sent (by order; the consumed order breaks ties).
        newest: dict[str, tuple[int, int, bytes]] = {}  # key -> n1, n2, value
        products: dict[str, None] = {}
        expiries: dict[tuple[str, str], None] = {}
        trims: dict[str, int] = {}  # product -> day of its newest record
        routes: dict[bytes, int] = {}  # publish -> route index (from 1)
        envelopes: list[bytes] = []
        head = _HEAD
        tp, part_of, topic_of, offset = None, -1, None, -1
        for record, (latest, n1, n2, product, expiry, publish) in chunk:
            if record.partition != part_of or record.kafka_topic is not topic_of:  # runs of one partition
                if tp is not None and offset > last.get(tp, -1):
                    last[tp] = offset
                topic_of, part_of = record.kafka_topic, record.partition
                tp = (topic_of, part_of)
                if record.offset < low.get(tp, record.offset + 1):
                    low[tp] = record.offset
            offset = record.offset
            if latest is not None:
                seen = newest.get(latest)
                if seen is None or n1 > seen[0] or (n1 == seen[0] and n2 >= seen[1]):
                    newest[latest] = (n1, n2, record.value)
            products[product] = None
            if expiry is not None:
                expiries[(product, expiry)] = None
                today = n1 // _US_PER_DAY  # n1 is the event time of chains and analytics
                if today >= trims.get(product, today):
                    trims[product] = today
            if publish is not None:
                route = routes.get(publish)
                if route is None:
                    route = routes[publish] = len(routes) + 1
                value = record.value
                envelopes.append(head(route, len(value)))
                envelopes.append(value)
        if tp is not None and offset > last.get(tp, -1):
            last[tp] = offset
        parts = b"".join(b"%s:%d\x1f%d\x1f%s\x1e" % (t.encode(), p, o, b"%d" % low[(t, p)] if (t, p) in low else b"")
                         for (t, p), o in last.items())
        set_ops = [b"S\x1fproducts\x1f\x1f%s\x1e" % p.encode() for p in products]
        set_ops += [b"Z\x1fexpiries:%s\x1f%d\x1f%s\x1e" % (p.encode(), _epoch_day(e), e.encode()) for p, e in expiries]
        # Expiries before the newest record's own date are no longer listed.
        set_ops += [b"T\x1fexpiries:%s\x1f%d\x1f\x1e" % (p.encode(), day) for p, day in trims.items()]
        latest_ops = b"".join(b"%s\x1f%d\x1f%d\x1f%s\x1e" % (key.encode(), n1, n2, value)
                              for key, (n1, n2, value) in newest.items())
        args = [self.offsets_key, ORDER_KEY, secrets.token_hex(6), self.settings.redis_latest_ttl_seconds,
                self.settings.redis_history_len, parts, latest_ops, b"".join(set_ops),
                b"".join(p + RS for p in routes), b"".join(envelopes),
                b"".join(b"%s:%d\x1f%d\x1e" % (t.encode(), p, o) for (t, p), o in (guard or {}).items())]
        return args, last

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, BusyLoadingError, OffsetsMoving)):
            return True
        if isinstance(exc, ResponseError):
            text = str(exc)
            return text.startswith(("BUSY", "LOADING", "OOM", "TRYAGAIN", "MASTERDOWN", "READONLY"))
        return False

    def close(self) -> None:
        self.client.close()
