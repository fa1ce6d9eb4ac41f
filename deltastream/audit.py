"""`deltastream audit`: is anything missing, duplicated or wrong for a window of event time?

What the feed produced (the market topics on Kafka) is the reference. For the window it
checks, by `event_id`:

* MongoDB holds every market record once, with the same values; no natural key (product +
  tick id, symbol + time, product + expiry + time) is stored under two ids;
* every chain snapshot has exactly one analytics record on `analytics.chain` and one in
  MongoDB, and those numbers equal the pure-math core applied to the stored snapshot;
* every closed 1m underlying bar in MongoDB equals the bar recomputed from the stored ticks;
* Redis: `latest:underlying:*` is at least as new as the window's last tick, and every
  room's history stream has contiguous sequence numbers (no gap, no duplicate).

A store may trail the feed by a moment, so missing records are looked for again until
`wait` seconds have passed before they are reported.
"""
from __future__ import annotations

import datetime as dt
import math
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np
import orjson

from deltastream.clients import mongo_client, redis_client
from deltastream.settings import Settings
from producers.replay.kafka_source import KafkaSource
from quant.chain import chain_analytics
from quant.ohlc import ohlc_bars
from schemas.records import ohlc_event_id
from schemas.topics import (ANALYTICS_CHAIN, MARKET_OPTION_CHAINS, MARKET_OPTION_QUOTES,
                            MARKET_UNDERLYING, MONGO_COLLECTIONS)

MARKET = (MARKET_UNDERLYING, MARKET_OPTION_QUOTES, MARKET_OPTION_CHAINS)
# What must be equal between the record on Kafka and the document in MongoDB.
COMPARED = {
    MARKET_UNDERLYING: ("product", "price", "tick_id"),
    MARKET_OPTION_QUOTES: ("symbol", "bid", "ask", "last", "volume", "open_interest", "iv"),
    MARKET_OPTION_CHAINS: ("product", "expiry", "spot_price", "strikes"),
}
NATURAL_KEY = {
    MARKET_UNDERLYING: ("product", "tick_id"),
    MARKET_OPTION_QUOTES: ("symbol", "timestamp"),
    MARKET_OPTION_CHAINS: ("product", "expiry", "timestamp"),
}
ANALYTIC_FIELDS = ("pcr_oi", "pcr_volume", "atm_strike", "atm_iv", "atm_straddle_price",
                   "max_pain_strike", "total_call_oi", "total_put_oi", "call_buildup_otm",
                   "put_buildup_otm", "iv_skew")
BAR_FIELDS = ("open", "high", "low", "close", "num_ticks")


@dataclass
class Check:
    name: str
    expected: int = 0
    found: int = 0
    missing: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    note: str = ""

    @property
    def ok(self) -> bool:
        return not (self.missing or self.duplicated or self.mismatched)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "expected": self.expected, "found": self.found,
                "missing": len(self.missing), "duplicated": len(self.duplicated),
                "mismatched": len(self.mismatched), "note": self.note,
                "examples": (self.missing + self.duplicated + self.mismatched)[:5]}


@dataclass
class AuditReport:
    start: dt.datetime
    end: dt.datetime
    checks: list[Check]
    kafka_duplicates: int  # the same event_id produced twice (a producer retry): harmless downstream

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    def as_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "ok": self.ok,
                "kafka_duplicates": self.kafka_duplicates, "checks": [c.as_dict() for c in self.checks]}


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        if a is None or b is None:
            return a is None and b is None
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9) or (a != a and b != b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _utc(value: Any) -> dt.datetime:
    """A UTC datetime at millisecond precision (BSON datetimes hold milliseconds)."""
    if not isinstance(value, dt.datetime):
        value = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


def read_kafka(settings: Settings, topics: Iterable[str], start: dt.datetime,
               end: dt.datetime) -> dict[str, list[dict[str, Any]]]:
    """The records of `topics` with start <= event time <= end, per registry topic name."""
    names = {settings.topic(t): t for t in topics}
    source = KafkaSource(settings, list(names), int(start.timestamp() * 1000), int(end.timestamp() * 1000))
    out: dict[str, list[dict[str, Any]]] = {t: [] for t in names.values()}
    for rec in source:
        try:
            out[names.get(rec.topic, rec.topic)].append(orjson.loads(rec.value))
        except (orjson.JSONDecodeError, KeyError):
            continue  # poison: the DLQ's business, not a record the feed produced
    return out


class Auditor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = mongo_client(settings)[settings.mongo_db]
        self.redis = redis_client(settings)

    def close(self) -> None:
        self.db.client.close()
        self.redis.close()

    # -- MongoDB -----------------------------------------------------------------------------
    def _stored(self, topic: str, ids: list[str]) -> dict[str, dict[str, Any]]:
        docs: dict[str, dict[str, Any]] = {}
        coll = self.db[MONGO_COLLECTIONS[topic]]
        for i in range(0, len(ids), 5_000):
            for doc in coll.find({"_id": {"$in": ids[i:i + 5_000]}}):
                docs[doc["_id"]] = doc
        return docs

    def _stored_with_wait(self, topic: str, ids: list[str], wait: float) -> dict[str, dict[str, Any]]:
        docs = self._stored(topic, ids)
        deadline = time.monotonic() + wait
        while len(docs) < len(set(ids)) and time.monotonic() < deadline:
            time.sleep(0.5)
            docs.update(self._stored(topic, [i for i in ids if i not in docs]))
        return docs

    def check_market(self, topic: str, records: list[dict[str, Any]], start: dt.datetime,
                     end: dt.datetime, wait: float) -> tuple[Check, dict[str, dict[str, Any]]]:
        check = Check(f"mongo {MONGO_COLLECTIONS[topic]}")
        produced = {r["event_id"]: r for r in records}
        check.expected = len(produced)
        docs = self._stored_with_wait(topic, list(produced), wait)
        check.found = len(docs)
        check.missing = sorted(set(produced) - set(docs))
        for eid, doc in docs.items():
            rec = produced[eid]
            if not all(_same(rec.get(f), doc.get(f)) for f in COMPARED[topic]) or \
                    _utc(rec["timestamp"]) != _utc(doc["timestamp"]):
                check.mismatched.append(eid)
        # Logical duplicates: a second document for the same market event under another id.
        keys = NATURAL_KEY[topic]
        coll = self.db[MONGO_COLLECTIONS[topic]]
        window = {"timestamp": {"$gte": start, "$lte": end}}
        counts = Counter(tuple(str(_utc(d[k])) if k == "timestamp" else d.get(k) for k in keys)
                         for d in coll.find(window, {k: 1 for k in keys}))
        check.duplicated = [":".join(map(str, k)) for k, n in counts.items() if n > 1]
        return check, docs

    # -- analytics ---------------------------------------------------------------------------
    def check_analytics(self, chains: dict[str, dict[str, Any]], published: list[dict[str, Any]],
                        wait: float) -> list[Check]:
        topic_check = Check("kafka analytics.chain", expected=len(chains))
        versions: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in published:
            versions[r["event_id"]].append(r)
        topic_check.found = sum(1 for eid in versions if eid in chains)
        topic_check.missing = sorted(set(chains) - set(versions))
        # A worker killed between sending its outputs and checkpointing sends them again
        # (Kafka transactions are not available on every broker, DESIGN.md): the same
        # event_id with the same values is a redelivery, absorbed by event_id downstream;
        # the same event_id with different values is an error.
        redelivered = 0
        for eid, copies in versions.items():
            if len(copies) > 1:
                if all(c == copies[0] for c in copies[1:]):
                    redelivered += len(copies) - 1
                else:
                    topic_check.duplicated.append(eid)
        topic_check.note = f"{redelivered} identical redeliveries" if redelivered else ""

        stored_check = Check("mongo chain_analytics (recomputed)", expected=len(chains))
        docs = self._stored_with_wait(ANALYTICS_CHAIN, list(chains), wait)
        stored_check.found = len(docs)
        stored_check.missing = sorted(set(chains) - set(docs))
        for eid, doc in docs.items():
            expected = recompute_analytics(chains[eid])
            if not all(_same(expected[f], doc.get(f)) for f in ANALYTIC_FIELDS):
                stored_check.mismatched.append(eid)
        return [topic_check, stored_check]

    def check_bars(self, ticks: dict[str, dict[str, Any]], start: dt.datetime, end: dt.datetime) -> Check:
        """1m bars whose window lies inside [start, end - grace] against the stored ticks."""
        check = Check("mongo ohlc_bars 1m (recomputed)")
        closed_before = end.timestamp() - self.settings.processor_grace_seconds
        by_product: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t in ticks.values():
            by_product[t["product"]].append(t)
        for product, rows in by_product.items():
            ts = np.array([_utc(r["timestamp"]).timestamp() for r in rows])
            px = np.array([r["price"] for r in rows], dtype=float)
            bars = ohlc_bars(ts, px, None, 60.0)
            for i, bar_start in enumerate(bars.start):
                if bar_start < start.timestamp() or bar_start + 60 > closed_before:
                    continue  # the window reaches outside the audited ticks
                check.expected += 1
                when = dt.datetime.fromtimestamp(bar_start, dt.timezone.utc)
                name = ohlc_event_id(product, "1m", when)
                doc = self.db.ohlc_bars.find_one({"_id": name})
                if doc is None:
                    check.missing.append(name)
                    continue
                check.found += 1
                want = {"open": bars.open[i], "high": bars.high[i], "low": bars.low[i],
                        "close": bars.close[i], "num_ticks": int(bars.num_ticks[i])}
                if not all(_same(float(want[f]) if f != "num_ticks" else want[f], doc.get(f))
                           for f in BAR_FIELDS):
                    # more ticks than stored: counted twice; fewer: lost
                    (check.duplicated if doc.get("num_ticks", 0) > want["num_ticks"]
                     else check.mismatched).append(name)
        return check

    # -- Redis -------------------------------------------------------------------------------
    def check_redis(self, ticks: dict[str, dict[str, Any]]) -> list[Check]:
        latest = Check("redis latest:underlying")
        newest: dict[str, dt.datetime] = {}
        for t in ticks.values():
            when = _utc(t["timestamp"])
            newest[t["product"]] = max(newest.get(t["product"], when), when)
        latest.expected = len(newest)
        for product, when in newest.items():
            raw = self.redis.get(f"latest:underlying:{product}")
            if raw is None:
                latest.missing.append(product)
                continue
            latest.found += 1
            if _utc(orjson.loads(raw)["timestamp"]) < when:
                latest.mismatched.append(f"{product} older than {when.isoformat()}")

        history = Check("redis history seq")
        for key in self.redis.scan_iter(match="history:*", count=1000):
            room = key.decode().removeprefix("history:")
            seqs = [int(orjson.loads(fields[b"env"])["seq"]) for _, fields in self.redis.xrange(key)]
            history.expected += 1
            history.found += bool(seqs)
            for a, b in zip(seqs, seqs[1:]):
                if b <= a:
                    history.duplicated.append(f"{room}: seq {b} after {a}")
                elif b > a + 1:
                    history.missing.append(f"{room}: seq {a + 1}..{b - 1}")
        history.note = "rooms (streams) checked"
        return [latest, history]

    # -- the whole audit ---------------------------------------------------------------------
    def run(self, start: dt.datetime, end: dt.datetime, wait: float = 10.0) -> AuditReport:
        kafka = read_kafka(self.settings, MARKET, start, end)
        kafka_dups = sum(n - 1 for t in MARKET for n in Counter(r["event_id"] for r in kafka[t]).values())
        checks, docs = [], {}
        for topic in MARKET:
            check, docs[topic] = self.check_market(topic, kafka[topic], start, end, wait)
            checks.append(check)
        chains = {r["event_id"]: r for r in kafka[MARKET_OPTION_CHAINS]}
        deadline = time.monotonic() + wait
        while True:  # the processors may still be catching up
            published = read_kafka(self.settings, [ANALYTICS_CHAIN], start, end)[ANALYTICS_CHAIN]
            if set(chains) <= {r["event_id"] for r in published} or time.monotonic() >= deadline:
                break
            time.sleep(1.0)
        checks += self.check_analytics(chains, published, wait)
        ticks = {r["event_id"]: r for r in kafka[MARKET_UNDERLYING]}
        checks.append(self.check_bars(ticks, start, end))
        checks += self.check_redis(ticks)
        return AuditReport(start, end, checks, kafka_dups)


def recompute_analytics(chain: dict[str, Any]) -> dict[str, Any]:
    """The chain analytics of one snapshot, from its quotes, with the pure-math core."""
    strikes = chain["strikes"]
    by_strike = {side: {q["strike"]: q for q in chain[side]} for side in ("calls", "puts")}

    def col(side: str, name: str) -> np.ndarray:
        quotes = by_strike[side]
        return np.array([np.nan if (q := quotes.get(k)) is None or q.get(name) is None else q[name]
                         for k in strikes], dtype=float)

    m = chain_analytics(chain["spot_price"], strikes, col("calls", "open_interest"), col("puts", "open_interest"),
                        col("calls", "volume"), col("puts", "volume"), col("calls", "iv"), col("puts", "iv"),
                        col("calls", "last"), col("puts", "last"))
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in m.as_dict().items()}


def audit(settings: Settings, start: dt.datetime, end: dt.datetime, wait: float = 10.0) -> AuditReport:
    if end <= start:
        raise ValueError(f"end {end.isoformat()} is not after start {start.isoformat()}")
    auditor = Auditor(settings)
    try:
        return auditor.run(start, end, wait)
    finally:
        auditor.close()
