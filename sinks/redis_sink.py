"""The Redis sink: latest values, product/expiry sets and the live fan-out (docs/storage.md).

A batch (in chunks of at most `CHUNK_RECORDS` records / `CHUNK_BYTES` bytes) is applied by
one Lua script, which Redis runs atomically, like MULTI/EXEC:

* it reads the offsets already applied (hash `sink:offsets:{group}`, field
  `{topic}:{partition}`) and skips every record at or below them, so a redelivered batch
  (a crash between the write and the Kafka commit, a retry after a lost reply) changes
  nothing: no second PUBLISH, no gap or jump in `seq`;
* sets `latest:*` keys (TTL `redis_latest_ttl_seconds`) unless the key holds a newer
  record (event time, then enriched over raw ticks; OHLC: window start, then event time);
* INCRements `seq:{room}` per envelope, creates `epoch:{room}` with a room's first seq,
  PUBLISHes `{"room","seq","epoch","event","data"}` and appends it to `history:{room}`
  (stream id `{seq}-0`, field `env`, trimmed to ~`redis_history_len`);
* adds products and expiries to `products` / `expiries:{product}`;
* stores the chunk's last offsets.
A script rather than a MULTI/EXEC pipeline because the envelope must carry the seq the
INCR returns, and because redis-py spends ~25 us per pipelined command in Python (no
hiredis): one script call per chunk is what makes 50k records/s possible.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Iterable, NamedTuple

from redis.exceptions import (BusyLoadingError, ConnectionError as RedisConnectionError,
                              ResponseError, TimeoutError as RedisTimeoutError)

from deltastream.clients import redis_client
from deltastream.settings import Settings
from schemas.topics import (ANALYTICS_CHAIN, ANALYTICS_OHLC, ANALYTICS_UNDERLYING,
                            ANALYTICS_VOL_SURFACE, MARKET_OPTION_CHAINS, MARKET_UNDERLYING)
from sinks.base import Batch, Rejected, Sink, SinkRecord, TopicPartition

log = logging.getLogger(__name__)

REDIS_TOPICS: tuple[str, ...] = (MARKET_UNDERLYING, MARKET_OPTION_CHAINS, ANALYTICS_UNDERLYING,
                                 ANALYTICS_CHAIN, ANALYTICS_VOL_SURFACE, ANALYTICS_OHLC)
ORDER_KEY = "sink:latest_order"  # latest key -> "n1:n2" order of the record it holds
CHUNK_RECORDS = 2000  # one script call blocks Redis for its duration (~10-40 ms at this size)
CHUNK_BYTES = 4 << 20

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

_SCRIPT = r"""
local call, find, sub, tonumber, fmt = redis.call, string.find, string.sub, tonumber, string.format
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

-- the chunk's partitions (field, last offset) and what is already applied of them
local parts, names, applied = {}, {}, {}
each(ARGV[6], 2, function(f) parts[#parts + 1] = f; names[#names + 1] = f[1] end)
if #names > 0 then
  local stored = call('HMGET', offsets_key, unpack(names))
  for i = 1, #names do applied[i] = tonumber(stored[i]) or -1 end
end

-- latest values: pidx, offset, key, n1, n2, value; kept unless the key holds a newer record
local latest = 0
each(ARGV[7], 6, function(f)
  if tonumber(f[2]) <= applied[tonumber(f[1])] then return end
  local key, n1, n2 = f[3], tonumber(f[4]), tonumber(f[5])
  if call('EXISTS', key) == 1 then
    local cur = call('HGET', order_key, key)
    if cur then
      local sep = find(cur, ':', 1, true)
      local c1, c2 = tonumber(sub(cur, 1, sep - 1)), tonumber(sub(cur, sep + 1))
      if n1 < c1 or (n1 == c1 and n2 < c2) then return end
    end
  end
  call('SET', key, f[6], 'EX', ttl)
  call('HSET', order_key, key, f[4] .. ':' .. f[5])
  latest = latest + 1
end)

-- sets: pidx, offset, op, key, arg, member (S: SADD, Z: ZADD arg, T: ZREMRANGEBYSCORE < arg)
each(ARGV[8], 6, function(f)
  if tonumber(f[2]) <= applied[tonumber(f[1])] then return end
  local op = f[3]
  if op == 'S' then call('SADD', f[4], f[6])
  elseif op == 'Z' then call('ZADD', f[4], f[5], f[6])
  else call('ZREMRANGEBYSCORE', f[4], '-inf', '(' .. f[5]) end
end)

-- envelopes: pidx, offset, channel, event, rooms (comma-separated), data
local seqs, epochs, published = {}, {}, 0
each(ARGV[9], 6, function(f)
  if tonumber(f[2]) <= applied[tonumber(f[1])] then return end
  local channel, event, data = f[3], f[4], f[6]
  for room in string.gmatch(f[5], '[^,]+') do
    local seq = seqs[room]
    if not seq then
      seq = tonumber(call('GET', 'seq:' .. room))
      local epoch = call('GET', 'epoch:' .. room)
      if not seq or not epoch then  -- a new room, or its history was lost: a new epoch
        seq, epoch = 0, new_epoch
        call('SET', 'epoch:' .. room, epoch)
        call('DEL', 'history:' .. room)
      end
      epochs[room] = epoch
    end
    seq = seq + 1
    seqs[room] = seq
    local s = fmt('%d', seq)
    local env = '{"room":"' .. room .. '","seq":' .. s .. ',"epoch":"' .. epochs[room] ..
                '","event":"' .. event .. '","data":' .. data .. '}'
    call('PUBLISH', channel, env)
    call('XADD', 'history:' .. room, s .. '-0', 'env', env)
    published = published + 1
  end
end)
for room, seq in pairs(seqs) do
  call('SET', 'seq:' .. room, fmt('%d', seq))
  call('XTRIM', 'history:' .. room, 'MAXLEN', '~', maxlen)
end

-- the chunk's offsets, in the same atomic step as its effects
local before = {}
for i, f in ipairs(parts) do
  before[i] = fmt('%d', applied[i])
  if tonumber(f[2]) > applied[i] then call('HSET', offsets_key, f[1], f[2]) end
end
return {latest, published, before}
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
    """What one record does in Redis (built with `_fx`: a plain tuple.__new__, no Python-level
    constructor, as this runs once per record)."""

    latest: str | None
    n1: int  # the record's order for its latest key: (n1, n2) compared as a pair
    n2: int
    product: str
    expiry: str | None = None
    publish: bytes | None = None  # US-joined channel, event, comma-separated rooms


def _fx(*fields) -> Effects:
    return tuple.__new__(Effects, fields)


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
        return _fx(key, _us(r.times["timestamp"]), rank, p, None, publish)
    return effects


@_cached
def _chain_keys(p: object, e: object) -> tuple:
    p, e = _name(p), _expiry(e)
    return f"latest:chain:{p}:{e}", p, e, _publish(CH_CHAIN, EV_CHAIN, f"chain:{p}")


def _chain(r: SinkRecord) -> Effects:
    d = r.data
    key, p, e, publish = _chain_keys(d["product"], d["expiry"])
    return _fx(key, _us(r.times["timestamp"]), 0, p, e, publish)


@_cached
def _analytics_keys(p: object, e: object) -> tuple:
    p, e = _name(p), _expiry(e)
    return f"latest:analytics:{p}:{e}", p, e, _publish(CH_SUMMARY, EV_SUMMARY, f"general,product:{p}")


def _analytics(r: SinkRecord) -> Effects:
    d = r.data
    key, p, e, publish = _analytics_keys(d["product"], d["expiry"])
    return _fx(key, _us(r.times["timestamp"]), 0, p, e, publish)


def _surface(r: SinkRecord) -> Effects:
    p = _name(r.data["product"])
    return _fx(f"latest:vol_surface:{p}", _us(r.times["timestamp"]), 0, p, None, None)


def _ohlc(r: SinkRecord) -> Effects:
    p, interval = _name(r.data["product"]), r.data["interval"]
    if interval not in _INTERVALS:
        raise ValueError(f"unknown interval {interval!r}")
    instrument = _name(r.data.get("symbol") or p)
    # The latest bar is the latest window; within a window, the latest update.
    return _fx(f"latest:ohlc:{instrument}:{interval}", _us(r.times["start_time"]),
               _us(r.times["timestamp"]), p, None, None)


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
    seconds: float = 0.0  # inside the script calls


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
        for chunk in chunks[:-1]:
            self._apply(chunk, None)
        # The last chunk also stores the offsets of records that went to the DLQ.
        self._apply(chunks[-1], batch.offsets)
        self.stats.records += len(batch.records) - len(rejected)
        return rejected

    def _apply(self, chunk: list[tuple[SinkRecord, Effects]], offsets: dict[TopicPartition, int] | None) -> None:
        last: dict[TopicPartition, int] = dict(offsets or {})
        for record, _ in chunk:
            tp = (record.kafka_topic, record.partition)
            if record.offset > last.get(tp, -1):
                last[tp] = record.offset
        if not last:
            return
        pidx = {tp: i for i, tp in enumerate(last, start=1)}
        parts = b"".join(b"%s:%d\x1f%d\x1e" % (t.encode(), p, o) for (t, p), o in last.items())

        # Per key only the newest record is sent (by order; the consumed order breaks ties).
        # Set members carry the (partition, offset) of their last record, so the script skips
        # them with it when it was applied before.
        newest: dict[str, tuple[int, int, int, int, bytes]] = {}  # key -> n1, n2, pidx, offset, value
        products: dict[str, tuple[int, int]] = {}
        expiries: dict[tuple[str, str], tuple[int, int]] = {}
        trims: dict[str, tuple[int, int, int]] = {}  # product -> (day of its newest record, pidx, offset)
        envelopes: list[bytes] = []
        tp_of, part_of, where = None, -1, 0
        for record, (latest, n1, n2, product, expiry, publish) in chunk:
            if record.partition != part_of or record.kafka_topic is not tp_of:  # runs of one partition
                tp_of, part_of = record.kafka_topic, record.partition
                where = pidx[(tp_of, part_of)]
            offset = record.offset
            if latest is not None:
                seen = newest.get(latest)
                if seen is None or n1 > seen[0] or (n1 == seen[0] and n2 >= seen[1]):
                    newest[latest] = (n1, n2, where, offset, record.value)
            products[product] = (where, offset)
            if expiry is not None:
                expiries[(product, expiry)] = (where, offset)
                today = n1 // _US_PER_DAY  # n1 is the event time of chains and analytics
                seen_day = trims.get(product)
                if seen_day is None or today >= seen_day[0]:
                    trims[product] = (today, where, offset)
            if publish is not None:
                envelopes.append(b"%d\x1f%d\x1f%s\x1f%s\x1e" % (where, offset, publish, record.value))
        set_ops = [b"%d\x1f%d\x1fS\x1fproducts\x1f\x1f%s\x1e" % (w, o, p.encode())
                   for p, (w, o) in products.items()]
        set_ops += [b"%d\x1f%d\x1fZ\x1fexpiries:%s\x1f%d\x1f%s\x1e" % (w, o, p.encode(), _epoch_day(e), e.encode())
                    for (p, e), (w, o) in expiries.items()]
        # Expiries before the newest record's own date are no longer listed.
        set_ops += [b"%d\x1f%d\x1fT\x1fexpiries:%s\x1f%d\x1f\x1e" % (w, o, p.encode(), day)
                    for p, (day, w, o) in trims.items()]
        latest_ops = b"".join(b"%d\x1f%d\x1f%s\x1f%d\x1f%d\x1f%s\x1e" % (w, o, key.encode(), n1, n2, value)
                              for key, (n1, n2, w, o, value) in newest.items())
        started = time.perf_counter()
        n_latest, n_published, before = self._script(args=[
            self.offsets_key, ORDER_KEY, secrets.token_hex(6), self.settings.redis_latest_ttl_seconds,
            self.settings.redis_history_len, parts, latest_ops, b"".join(set_ops), b"".join(envelopes)])
        self.stats.seconds += time.perf_counter() - started
        self.stats.scripts += 1
        self.stats.latest += n_latest
        self.stats.published += n_published
        applied = {tp: int(v) for tp, v in zip(last, before)}
        if any(v >= 0 for v in applied.values()):
            self.stats.skipped += sum(1 for r, _ in chunk if r.offset <= applied[(r.kafka_topic, r.partition)])

    def is_transient(self, exc: BaseException) -> bool:
        if isinstance(exc, (RedisConnectionError, RedisTimeoutError, BusyLoadingError)):
            return True
        if isinstance(exc, ResponseError):
            text = str(exc)
            return text.startswith(("BUSY", "LOADING", "OOM", "TRYAGAIN", "MASTERDOWN", "READONLY"))
        return False

    def close(self) -> None:
        self.client.close()
