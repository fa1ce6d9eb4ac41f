"""Test harness for the stream processors: market messages, workers, outputs, expectations.

The expectations are computed independently of `stream_processors`: records are parsed
with the schema models and handed to the quant core (`quant.chain_analytics`,
`quant.vol_surface_slice`, `quant.ohlc_bars`).
"""
from __future__ import annotations

import datetime as dt
import random
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import numpy as np
import orjson
from confluent_kafka import Consumer, Producer

from deltastream.clients import TailGaps, consumer_config, end_offsets, producer_config
from deltastream.runtime.topics import ensure_topics
from deltastream.runtime.processor_worker import Worker, worker_env  # noqa: F401 - the tests import them from here
from deltastream.settings import Settings
from producers.feed.records import chain_records, iso_utc, underlying_record
from producers.feed.run import FeedOptions, synthetic_provider
from quant import chain_analytics, ohlc_bars, vol_surface_slice
from schemas.codec import encode_dict, headers
from schemas.records import (INTERVAL_SECONDS, OptionChain, OptionQuote, UnderlyingTick,
                             ohlc_event_id)
from schemas.topics import (ANALYTICS_CHAIN, ANALYTICS_OHLC, ANALYTICS_UNDERLYING,
                            ANALYTICS_VOL_SURFACE, DELTASTREAM_DLQ, MARKET_OPTION_CHAINS,
                            MARKET_OPTION_QUOTES, MARKET_UNDERLYING)

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.timezone.utc)
OUTPUTS = (ANALYTICS_UNDERLYING, ANALYTICS_CHAIN, ANALYTICS_OHLC, ANALYTICS_VOL_SURFACE, DELTASTREAM_DLQ)
SCHEMAS = {MARKET_UNDERLYING: UnderlyingTick, MARKET_OPTION_QUOTES: OptionQuote,
           MARKET_OPTION_CHAINS: OptionChain}


@dataclass(frozen=True)
class Msg:
    topic: str  # registry name, without prefix
    key: str
    value: bytes
    ts: float = 0.0  # event time, seconds (for perturbing)

    def record(self) -> Any:
        return SCHEMAS[self.topic].model_validate_json(self.value)


def processor_settings(stack, unique: str, tmp_path: Path, **changes) -> Settings:
    """Fresh topics (prefix) and consumer group (app id) per test, and a small market."""
    base = dict(topic_prefix=f"p{unique}.", processor_app_id=f"proc-{unique}", data_dir=tmp_path / "data",
                products=["NIFTY", "AAPL"], feed_strikes_per_side=3, feed_expiries=2, feed_seed=7,
                feed_interval=2.0, processor_grace_seconds=10.0, processor_bar_update_seconds=0.0)
    settings = stack.with_settings(**(base | changes))
    ensure_topics(settings)
    return settings


def market_messages(settings: Settings, snapshots: int, *, quotes: bool = True) -> list[Msg]:
    """What the feed publishes for `snapshots` steps of its simulated clock, in feed order."""
    provider = synthetic_provider(settings, FeedOptions(realtime=False, start=T0))
    out: list[Msg] = []
    for n, snap in zip(range(snapshots), provider.snapshots()):
        ts_iso, ts = iso_utc(snap.timestamp), snap.timestamp.timestamp()
        for frame in snap.underlyings:
            out.append(Msg(MARKET_UNDERLYING, frame.product, encode_dict(underlying_record(frame, ts_iso)), ts))
        tick_ids = {u.product: u.tick_id for u in snap.underlyings}
        for frame in snap.chains:
            calls, puts, chain = chain_records(frame, ts_iso, tick_ids[frame.product])
            if quotes:
                out += [Msg(MARKET_OPTION_QUOTES, q["symbol"], encode_dict(q), ts) for q in calls + puts]
            out.append(Msg(MARKET_OPTION_CHAINS, f"{frame.product}|{chain['expiry']}", encode_dict(chain), ts))
    return out


def perturb(messages: list[Msg], seed: int, max_shift: float, duplicates: float) -> list[Msg]:
    """Out of order by up to `max_shift` seconds of event time, plus re-sent duplicates."""
    rng = random.Random(seed)
    jittered = sorted(messages, key=lambda m: m.ts + rng.uniform(0, max_shift))
    out = []
    for m in jittered:
        out.append(m)
        if rng.random() < duplicates:
            out.append(m)
    dup_later = rng.sample(messages, int(len(messages) * duplicates))  # and some much later
    return out + dup_later


def publish(settings: Settings, messages: Iterable[Msg], *, pace: float = 0.0) -> int:
    producer = Producer(producer_config(settings))
    hdrs = {t: headers(m.SCHEMA) for t, m in SCHEMAS.items()}
    n = 0
    for m in messages:
        while True:
            try:
                producer.produce(settings.topic(m.topic), m.value, m.key, headers=hdrs.get(m.topic))
                break
            except BufferError:
                producer.poll(0.05)
        n += 1
        if pace and n % 100 == 0:
            producer.poll(0)
            time.sleep(pace)
    assert producer.flush(60) == 0
    return n


def publish_raw(settings: Settings, topic: str, key: str, value: bytes) -> None:
    producer = Producer(producer_config(settings))
    producer.produce(settings.topic(topic), value, key)
    assert producer.flush(30) == 0


# -- workers ---------------------------------------------------------------------------------
# -- outputs ---------------------------------------------------------------------------------
class Outputs:
    """Everything on the output topics of one prefix, read incrementally."""

    def __init__(self, settings: Settings, group: str) -> None:
        self.settings = settings
        self.consumer = Consumer(consumer_config(settings, group))
        self.consumer.subscribe([settings.topic(t) for t in OUTPUTS])
        self.gaps = TailGaps(self.consumer, settings)  # two workers write the same partitions
        self.by_topic: dict[str, list[dict]] = defaultdict(list)
        self.raw: dict[str, list] = defaultdict(list)

    def poll(self, seconds: float = 0.5) -> int:
        got = 0
        for msg in self.gaps.filter(self.consumer.consume(10_000, seconds)):
            if msg.error():
                continue
            name = msg.topic()[len(self.settings.topic_prefix):]
            self.by_topic[name].append(orjson.loads(msg.value()))
            self.raw[name].append(msg)
            got += 1
        return got

    def until(self, done: Callable[["Outputs"], bool], timeout: float = 90, quiet: float = 1.5) -> "Outputs":
        """Poll until `done` holds, then until nothing arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        while not done(self):
            if time.monotonic() > deadline:
                missing = getattr(done, "missing", lambda out: "")(self)
                raise AssertionError(f"outputs incomplete after {timeout}s: "
                                     f"{ {k: len(v) for k, v in self.by_topic.items()} } {missing}")
            self.poll()
        last = time.monotonic()
        while time.monotonic() - last < quiet:
            if self.poll(0.3):
                last = time.monotonic()
        return self

    def latest(self, topic: str) -> dict[str, dict]:
        """The last version of every record, by event id (what an upserting sink keeps)."""
        return {r["event_id"]: r for r in self.by_topic[topic]}

    def versions(self, topic: str, event_id: str) -> list[tuple]:
        """Every copy of one record that arrived, in arrival order (for failure messages)."""
        return [(r.get("final"), m.partition(), m.offset(), r.get("num_ticks"))
                for r, m in zip(self.by_topic[topic], self.raw[topic]) if r["event_id"] == event_id]

    def holes(self) -> dict[str, list]:
        """Offsets this reader never received, per output partition, and the broker's end
        offset next to the last one received (for failure messages: every output topic is
        written without transactions or compaction, so offsets must be contiguous)."""
        out: dict[str, list] = {}
        for name, msgs in self.raw.items():
            by_partition: dict[int, list[int]] = defaultdict(list)
            for m in msgs:
                by_partition[m.partition()].append(m.offset())
            for partition, offsets in sorted(by_partition.items()):
                seen = set(offsets)
                missing = [o for o in range(0, max(seen) + 1) if o not in seen]
                tp = (self.settings.topic(name), partition)
                high = end_offsets(self.settings, self.consumer, [tp], timeout=5)[tp]
                if missing or high != max(seen) + 1:
                    out[f"{name}[{partition}]"] = [missing[:20], f"last {max(seen)}, end {high}"]
        return out

    def close(self) -> None:
        self.consumer.close()


# -- expectations (schema models + quant core) -------------------------------------------------
def unique_records(messages: Iterable[Msg]) -> dict[str, list[Any]]:
    """Records per input topic, first copy of each event id, in first-arrival order."""
    seen, out = set(), defaultdict(list)
    for m in messages:
        rec = m.record()
        if rec.event_id not in seen:
            seen.add(rec.event_id)
            out[m.topic].append(rec)
    return out


def _epoch(ts: dt.datetime) -> float:
    return ts.timestamp()


def expected_bars(records: dict[str, list[Any]], grace: float) -> dict[str, dict]:
    """Every bar by event id: OHLC, volume, ticks and whether its window has closed."""
    series: dict[tuple[str, str | None], list[tuple[float, float, int | None]]] = defaultdict(list)
    for t in records[MARKET_UNDERLYING]:
        series[(t.product, None)].append((_epoch(t.timestamp), t.price, None))
    for q in records[MARKET_OPTION_QUOTES]:
        series[(q.product, q.symbol)].append((_epoch(q.timestamp), q.last, q.volume))
    out = {}
    for (product, symbol), points in series.items():
        points.sort(key=lambda p: p[0])  # stable: equal times keep arrival order
        ts = np.array([p[0] for p in points])
        px = np.array([p[1] for p in points])
        volumes = None
        if symbol is not None:
            cum = [p[2] for p in points]
            volumes = np.array([0] + [b - a if b >= a else b for a, b in zip(cum, cum[1:])], float)
        watermark = ts.max()
        for interval in (("1m",) if symbol else ("1m", "5m", "15m")):
            length = INTERVAL_SECONDS[interval]
            bars = ohlc_bars(ts, px, volumes, length)
            for i, start in enumerate(bars.start):
                begin = dt.datetime.fromtimestamp(start, dt.timezone.utc)
                out[ohlc_event_id(symbol or product, interval, begin)] = {
                    "open": bars.open[i], "high": bars.high[i], "low": bars.low[i],
                    "close": bars.close[i], "volume": int(bars.volume[i]),
                    "num_ticks": int(bars.num_ticks[i]),
                    "final": bool(start + length + grace <= watermark)}
    return out


def _side(chain: OptionChain, side: str) -> dict[str, np.ndarray]:
    index = {k: i for i, k in enumerate(chain.strikes)}
    cols = {c: np.full(len(chain.strikes), np.nan) for c in ("oi", "volume", "iv", "last")}
    for q in getattr(chain, side):
        i = index[q.strike]
        cols["oi"][i], cols["volume"][i], cols["last"][i] = q.open_interest, q.volume, q.last
        cols["iv"][i] = np.nan if q.iv is None else q.iv
    return cols


def expected_analytics(chain: OptionChain) -> dict[str, Any]:
    c, p = _side(chain, "calls"), _side(chain, "puts")
    m = chain_analytics(chain.spot_price, chain.strikes, c["oi"], p["oi"], c["volume"], p["volume"],
                        c["iv"], p["iv"], c["last"], p["last"])
    return {k: (None if isinstance(v, float) and v != v else v) for k, v in m.as_dict().items()}


def expected_surface(chains: list[OptionChain]) -> dict[str, dict]:
    """Per expiry of the product's newest chains: the quant slice."""
    latest: dict[Any, OptionChain] = {}
    for ch in chains:
        if ch.expiry not in latest or ch.timestamp > latest[ch.expiry].timestamp:
            latest[ch.expiry] = ch
    out = {}
    for expiry, ch in latest.items():
        c, p = _side(ch, "calls"), _side(ch, "puts")
        s = vol_surface_slice(ch.spot_price, ch.strikes, c["iv"], p["iv"])
        out[expiry.isoformat()] = {"strikes": s.strikes.tolist(), "moneyness": s.moneyness.tolist(),
                                   "ivs": [None if v != v else v for v in s.ivs.tolist()],
                                   "atm_iv": None if s.atm_iv != s.atm_iv else s.atm_iv}
    return out


def close(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))
