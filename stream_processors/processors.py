"""The four processors, as pure functions of (key, state, records) → (state, outputs).

No Faust and no Kafka here: `stream_processors.app` feeds them batches of decoded records
grouped by key and keeps their states in changelog-backed tables. A processor never
modifies the state it is given in place in a way the caller relies on (the caller passes a
fresh copy and can retry a failed batch record by record from the stored state).

* UnderlyingProcessor (market.underlying, key product): enriched tick per tick
  (analytics.underlying) and 1m/5m/15m bars (analytics.ohlc).
* QuoteProcessor (market.option_quotes, key symbol): 1m bars per option.
* ChainProcessor (market.option_chains, key product|expiry): chain analytics per snapshot
  (analytics.chain) and, for the newest snapshot of the batch, its volatility-surface slice,
  forwarded by product to the surface processor.
* SurfaceProcessor (internal slices topic, key product): the product's surface from the
  latest slice of each expiry (analytics.vol_surface).
"""
from __future__ import annotations

import datetime as dt
import itertools
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from quant import chain_analytics_batch, vol_surface_slice_batch
from schemas.records import ChainAnalytics, EnrichedUnderlying, OhlcBar, VolSurface
from schemas.topics import (ANALYTICS_CHAIN, ANALYTICS_OHLC, ANALYTICS_UNDERLYING,
                            ANALYTICS_VOL_SURFACE)
from stream_processors.bars import US, Point, Windows, WindowSpec, iso_from_us
from stream_processors.decode import Chain, Quote, Tick
from stream_processors.dedupe import NEW, Seen

SLICES = "slices"  # the internal topic (named per app id by stream_processors.app)
UNDERLYING_INTERVALS = ("1m", "5m", "15m")
QUOTE_INTERVALS = ("1m",)
_DAY_US = 86_400 * US


@dataclass(frozen=True, slots=True)
class Out:
    topic: str  # registry name (schemas.topics) or SLICES
    key: str
    record: dict[str, Any]
    schema: str


@dataclass
class Counts:
    """What happened to the records a processor saw (for logs, tests and the bench)."""

    c: Counter = field(default_factory=Counter)

    def __getitem__(self, name: str) -> int:
        return self.c[name]

    def add(self, name: str, n: int = 1) -> None:
        self.c[name] += n


def _none_if_nan(x: float) -> float | None:
    return None if x != x else x


def _filter_new(seen: Seen, records: Sequence[Any], counts: Counts) -> list[Any]:
    """Records this state has not applied yet (the others only move the offset mark)."""
    fresh = []
    for r in records:
        verdict = seen.verdict(r.event_id, r.ts, r.src.partition, r.src.offset)
        if verdict is NEW:
            seen.add(r.event_id, r.ts, r.src.partition, r.src.offset)
            fresh.append(r)
        else:
            seen.skip(r.src.partition, r.src.offset)
            counts.add(verdict)
    return fresh


def _bar_outputs(windows: Windows, product: str, symbol: str | None, key: str,
                 counts: Counts) -> list[Out]:
    out = [Out(ANALYTICS_OHLC, key, bar, OhlcBar.SCHEMA) for bar in windows.emit(product, symbol)]
    counts.add("late", windows.late)
    counts.add("bars", len(out))
    return out


class UnderlyingProcessor:
    def __init__(self, spec: WindowSpec, dedupe_limit: int) -> None:
        self.spec = spec
        self.limit = dedupe_limit
        self.counts = Counts()

    def apply(self, key: str, state: dict | None, ticks: Sequence[Tick]) -> tuple[dict, list[Out]]:
        state = state or {}
        seen = Seen(state.get("seen"), key, self.limit)
        windows = Windows(state.get("bars"), self.spec)
        session = state.get("session")
        out: list[Out] = []
        for t in _filter_new(seen, ticks, self.counts):
            session, record = self._enrich(session, t)
            out.append(Out(ANALYTICS_UNDERLYING, t.product, record, EnrichedUnderlying.SCHEMA))
            windows.add(Point(t.ts, t.price, None))
        self.counts.add("enriched", len(out))
        out += _bar_outputs(windows, key, None, key, self.counts)
        return {"seen": seen.d, "session": session, "bars": windows.d}, out

    @staticmethod
    def _enrich(session: dict | None, t: Tick) -> tuple[dict, dict[str, Any]]:
        """Session = the UTC day of the event. prev_price is the latest earlier tick of the
        session as processed so far (a late tick does not become the latest)."""
        day = t.ts // _DAY_US
        if session is None or day > session["day"]:
            session = {"day": day, "open": t.price, "open_ts": t.ts, "high": t.price,
                       "low": t.price, "last": None, "last_ts": None}
        if day < session["day"]:  # a straggler from a previous day: no context kept
            ctx = {"day": day, "open": t.price, "high": t.price, "low": t.price}
            prev = None
        else:
            if t.ts < session["open_ts"]:
                session["open"], session["open_ts"] = t.price, t.ts
            session["high"] = max(session["high"], t.price)
            session["low"] = min(session["low"], t.price)
            prev = session["last"] if session["last_ts"] is not None and session["last_ts"] < t.ts \
                else None
            if session["last_ts"] is None or t.ts >= session["last_ts"]:
                session["last"], session["last_ts"] = t.price, t.ts
            ctx = session
        change = None if prev is None else t.price - prev
        record = {
            "product": t.product, "price": t.price, "prev_price": prev, "change": change,
            "change_pct": None if prev is None else 100.0 * change / prev,
            "day_open": ctx["open"], "day_high": ctx["high"], "day_low": ctx["low"],
            "timestamp": t.timestamp, "tick_id": t.tick_id, "event_id": t.event_id,
        }
        return session, record


class QuoteProcessor:
    def __init__(self, spec: WindowSpec, dedupe_limit: int) -> None:
        self.spec = spec
        self.limit = dedupe_limit
        self.counts = Counts()

    def apply(self, key: str, state: dict | None, quotes: Sequence[Quote]) -> tuple[dict, list[Out]]:
        state = state or {}
        seen = Seen(state.get("seen"), key, self.limit)
        windows = Windows(state.get("bars"), self.spec)
        fresh = _filter_new(seen, quotes, self.counts)
        for q in fresh:
            windows.add(Point(q.ts, q.last, q.volume))
        self.counts.add("quotes", len(fresh))
        product = quotes[0].product
        return {"seen": seen.d, "bars": windows.d}, _bar_outputs(windows, product, key, key, self.counts)


def analytics_records(chains: Sequence[Chain]) -> list[dict[str, Any]]:
    """The analytics.chain records of snapshots: the quant core on their columns, all
    snapshots in one vectorised call (`quant.chain_analytics_batch`: per snapshot, numpy's
    per-call overhead would be most of the cost at ~40 strikes).

    call/put_buildup_otm follow the published record (open interest of OTM calls / puts),
    which is chain_analytics without a previous snapshot."""
    if not chains:
        return []
    calls = [c.calls for c in chains]
    puts = [c.puts for c in chains]
    cat = np.concatenate
    m = chain_analytics_batch(
        [c.spot for c in chains], [c.strikes.size for c in chains], cat([c.strikes for c in chains]),
        cat([s.open_interest for s in calls]), cat([s.open_interest for s in puts]),
        cat([s.volume for s in calls]), cat([s.volume for s in puts]),
        cat([s.iv for s in calls]), cat([s.iv for s in puts]),
        cat([s.last for s in calls]), cat([s.last for s in puts])).columns()
    nan = _none_if_nan
    return [{
        "product": c.product, "expiry": c.expiry, "spot_price": c.spot,
        "pcr_oi": nan(pcr_oi), "pcr_volume": nan(pcr_volume),
        "atm_strike": atm_strike, "atm_iv": nan(atm_iv),
        "atm_straddle_price": nan(straddle), "max_pain_strike": max_pain,
        "total_call_oi": call_oi, "total_put_oi": put_oi,
        "call_buildup_otm": call_buildup, "put_buildup_otm": put_buildup,
        "iv_skew": nan(skew), "timestamp": c.timestamp, "event_id": c.event_id,
    } for c, pcr_oi, pcr_volume, atm_strike, atm_iv, straddle, max_pain, call_oi, put_oi,
        call_buildup, put_buildup, skew in zip(
            chains, m["pcr_oi"], m["pcr_volume"], m["atm_strike"], m["atm_iv"],
            m["atm_straddle_price"], m["max_pain_strike"], m["total_call_oi"], m["total_put_oi"],
            m["call_buildup_otm"], m["put_buildup_otm"], m["iv_skew"], strict=True)]


def days_to_expiry(expiry: str, ts_us: int) -> float:
    """Days from the event to the end of the expiry day (UTC), never negative."""
    end = (dt.date.fromisoformat(expiry) - dt.date(1970, 1, 1)).days + 1
    return max(end * _DAY_US - ts_us, 0) / _DAY_US


def slice_records(chains: Sequence[Chain]) -> list[dict[str, Any]]:
    """The volatility-surface slices of snapshots, all in one vectorised call."""
    if not chains:
        return []
    b = vol_surface_slice_batch([c.spot for c in chains], [c.strikes.size for c in chains],
                                np.concatenate([c.strikes for c in chains]),
                                np.concatenate([c.calls.iv for c in chains]),
                                np.concatenate([c.puts.iv for c in chains]))
    strikes, moneyness = b.strikes.tolist(), b.moneyness.tolist()
    ivs = [_none_if_nan(v) for v in b.ivs.tolist()]
    return [{"product": c.product, "expiry": c.expiry, "ts": c.ts, "timestamp": c.timestamp,
             "spot_price": c.spot, "days_to_expiry": days_to_expiry(c.expiry, c.ts),
             "strikes": strikes[lo:lo + n], "moneyness": moneyness[lo:lo + n], "ivs": ivs[lo:lo + n],
             "atm_iv": _none_if_nan(atm)}
            for c, lo, n, atm in zip(chains, b.starts.tolist(), b.counts.tolist(), b.atm_iv.tolist())]


class ChainProcessor:
    def __init__(self, dedupe_limit: int) -> None:
        self.limit = dedupe_limit
        self.counts = Counts()

    def apply(self, key: str, state: dict | None, chains: Sequence[Chain]) -> tuple[dict, list[Out]]:
        return self.apply_many([(key, state, chains)])[0]

    def apply_many(self, groups: Sequence[tuple[str, dict | None, Sequence[Chain]]]
                   ) -> list[tuple[dict, list[Out]]]:
        """`apply` for several keys at once (distinct keys): the analytics of every fresh
        snapshot of every key in one vectorised call. A worker's batch holds a few snapshots
        per key (~1.5 at 24 keys and ~40 messages), too few to vectorise key by key."""
        views, fresh = [], []
        for key, state, chains in groups:
            state = state or {}
            seen = Seen(state.get("seen"), key, self.limit)
            mine = _filter_new(seen, chains, self.counts)
            views.append((key, seen, state.get("latest"), len(mine)))
            fresh += mine
        records = iter(zip(fresh, analytics_records(fresh)))
        self.counts.add("analytics", len(fresh))
        results = []
        newest: list[tuple[list[Out], Chain]] = []
        for key, seen, latest, n in views:  # latest: the newest snapshot's analytics, by event time
            out: list[Out] = []
            chain: Chain | None = None
            for c, record in itertools.islice(records, n):
                out.append(Out(ANALYTICS_CHAIN, key, record, ChainAnalytics.SCHEMA))
                if latest is None or c.ts >= latest["ts"]:
                    latest = {"ts": c.ts, "analytics": record}
                    chain = c
            if chain is not None:
                newest.append((out, chain))
            results.append(({"seen": seen.d, "latest": latest}, out))
        for (out, c), record in zip(newest, slice_records([c for _, c in newest])):
            out.append(Out(SLICES, c.product, record, "slice"))
        return results


class SurfaceProcessor:
    """State per product: the latest slice per expiry. A slice replaces an older one of its
    expiry; expiries before the newest slice's day are dropped (they have expired)."""

    def __init__(self) -> None:
        self.counts = Counts()

    def apply(self, key: str, state: dict | None, slices: Sequence[Any]) -> tuple[dict, list[Out]]:
        state = state or {"slices": {}}
        held: dict[str, dict] = state["slices"]
        changed = False
        for item in slices:
            s = item.record
            current = held.get(s["expiry"])
            if current is None or s["ts"] > current["ts"]:
                held[s["expiry"]] = s
                changed = True
        if not changed or not held:
            return state, []
        newest = max(held.values(), key=lambda s: s["ts"])
        today = iso_from_us(newest["ts"])[:10]
        for expiry in [e for e in held if e < today]:
            del held[expiry]
        expiries = [{k: s[k] for k in ("expiry", "days_to_expiry", "strikes", "moneyness", "ivs",
                                       "atm_iv")} for _, s in sorted(held.items())]
        when = iso_from_us(newest["ts"])
        record = {"product": key, "timestamp": when, "spot_price": newest["spot_price"],
                  "expiries": expiries, "event_id": f"{key}:{when}"}
        self.counts.add("surfaces")
        return state, [Out(ANALYTICS_VOL_SURFACE, key, record, VolSurface.SCHEMA)]

