"""Sink throughput: records/s of one sink process next to bare pymongo / redis-py on the same
records, against the same embedded servers (started here, on free ports).

    python -m bench.bench_sinks [--snapshots 30] [--small 60000] [--chains 3000]

Scenarios (each preloaded into its own topics first, so the sink only reads from Kafka):
* mongo: the feed's records (underlying ticks, option quotes, chain snapshots) into MongoDB;
  raw = `bulk_write` of the same `ReplaceOne(_id)` upserts, same batch size and indexes.
* redis-small: raw and enriched underlying ticks and chain analytics (small records, two rooms
  published per enriched tick / summary); raw = a redis-py MULTI/EXEC pipeline doing the
  same SETs, INCRs, PUBLISHes and XADDs per record; script = the sink's own Lua batch
  without Kafka.
* redis-chains: full option-chain snapshots (~18 kB each).
Also: the bare Kafka consume rate of the same topics (the ceiling the broker sets).
Nothing is asserted; the figures depend on the machine (all servers share its cores).
"""
from __future__ import annotations

import argparse
import datetime as dt
import itertools
import logging
import statistics
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import psutil
from confluent_kafka import Consumer, Producer
from pymongo import ReplaceOne

from deltastream.clients import consumer_config, mongo_client, producer_config, redis_client
from deltastream.runtime.topics import ensure_topics
from deltastream.settings import Settings
from producers.feed.records import chain_records, iso_utc, underlying_record
from producers.feed.run import FeedOptions, synthetic_provider
from schemas.codec import encode_dict, headers
from schemas.records import ChainAnalytics, EnrichedUnderlying, OptionChain, OptionQuote, UnderlyingTick
from schemas.topics import (ANALYTICS_CHAIN, ANALYTICS_UNDERLYING, MARKET_OPTION_CHAINS,
                            MARKET_OPTION_QUOTES, MARKET_UNDERLYING, MONGO_COLLECTIONS)
from sinks.base import Batch, SinkRecord
from sinks.decode import TopicDecoder
from sinks.mongo_sink import MongoSink, ensure_indexes, to_document
from sinks.redis_sink import ROUTES, RedisSink
from sinks.run import settled_gc
from sinks.runner import BULK_CONSUMER, SinkRunner
from deltastream.runtime.stack import start_stack

T0 = dt.datetime(2026, 1, 5, 9, 15, tzinfo=dt.timezone.utc)
Message = tuple[str, str, bytes, list]  # topic (registry name), key, value, headers


# -- datasets ------------------------------------------------------------------------------------
def feed_messages(settings: Settings, snapshots: int) -> list[Message]:
    """What the feed publishes for `snapshots` snapshots (ticks, quotes, chains)."""
    provider = synthetic_provider(settings, FeedOptions(realtime=False, start=T0))
    out: list[Message] = []
    hu, hq, hc = (headers(m.SCHEMA) for m in (UnderlyingTick, OptionQuote, OptionChain))
    for i, snap in zip(range(snapshots), provider.snapshots()):
        ts = iso_utc(snap.timestamp)
        for f in snap.underlyings:
            out.append((MARKET_UNDERLYING, f.product, encode_dict(underlying_record(f, ts)), hu))
        ticks = {u.product: u.tick_id for u in snap.underlyings}
        for f in snap.chains:
            calls, puts, chain = chain_records(f, ts, ticks[f.product])
            out += [(MARKET_OPTION_QUOTES, q["symbol"], encode_dict(q), hq) for q in calls + puts]
            out.append((MARKET_OPTION_CHAINS, f"{f.product}|{chain['expiry']}", encode_dict(chain), hc))
    return out


def small_messages(settings: Settings, count: int) -> list[Message]:
    """Raw ticks, enriched ticks and chain analytics, as the processors would publish them."""
    provider = synthetic_provider(settings, FeedOptions(realtime=False, start=T0))
    hu, he, ha = (headers(m.SCHEMA) for m in (UnderlyingTick, EnrichedUnderlying, ChainAnalytics))
    out: list[Message] = []
    day: dict[str, tuple[float, float, float, float]] = {}  # open, high, low, prev
    for snap in provider.snapshots():
        ts = iso_utc(snap.timestamp)
        for f in snap.underlyings:
            tick = underlying_record(f, ts)
            o, h, lo, prev = day.get(f.product, (f.price, f.price, f.price, None))
            h, lo = max(h, f.price), min(lo, f.price)
            day[f.product] = (o, h, lo, f.price)
            change = None if prev is None else f.price - prev
            enriched = {**tick, "prev_price": prev, "change": change,
                        "change_pct": None if prev is None else 100 * change / prev,
                        "day_open": o, "day_high": h, "day_low": lo}
            out.append((MARKET_UNDERLYING, f.product, encode_dict(tick), hu))
            out.append((ANALYTICS_UNDERLYING, f.product, encode_dict(enriched), he))
        ticks = {u.product: u.tick_id for u in snap.underlyings}
        for f in snap.chains:
            calls, puts, chain = chain_records(f, ts, ticks[f.product])
            call_oi, put_oi = sum(q["open_interest"] for q in calls), sum(q["open_interest"] for q in puts)
            atm = min(chain["strikes"], key=lambda k: abs(k - f.spot))
            analytics = {
                "product": f.product, "expiry": chain["expiry"], "spot_price": f.spot,
                "pcr_oi": put_oi / call_oi if call_oi else None, "pcr_volume": None,
                "atm_strike": atm, "atm_iv": None, "atm_straddle_price": None, "max_pain_strike": atm,
                "total_call_oi": call_oi, "total_put_oi": put_oi,
                "call_buildup_otm": sum(q["open_interest"] for q in calls if q["strike"] > f.spot),
                "put_buildup_otm": sum(q["open_interest"] for q in puts if q["strike"] < f.spot),
                "iv_skew": None, "timestamp": ts, "event_id": f"{chain['event_id']}:analytics"}
            out.append((ANALYTICS_CHAIN, f"{f.product}|{chain['expiry']}", encode_dict(analytics), ha))
        if len(out) >= count:
            return out[:count]
    raise AssertionError("unreachable")


def chain_messages(settings: Settings, count: int) -> list[Message]:
    return [m for m in feed_messages(settings, count // 24 + 1) if m[0] == MARKET_OPTION_CHAINS][:count]


def preload(settings: Settings, messages: list[Message]) -> float:
    """Produce into the (prefixed) topics; returns records/s produced."""
    ensure_topics(settings)
    producer = Producer(producer_config(settings, batched=True))  # as the feed and the processors write
    started = time.perf_counter()
    for topic, key, value, hdrs in messages:
        while True:
            try:
                producer.produce(settings.topic(topic), value, key, headers=hdrs)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("preload: records not delivered")
    return len(messages) / (time.perf_counter() - started)


def decoded(settings: Settings, messages: list[Message]) -> list[SinkRecord]:
    """The records as the sink sees them (for the bare-client baselines)."""
    decoders = {t: TopicDecoder(t, settings.topic(t), validate=False) for t in {m[0] for m in messages}}
    out = []
    for i, (topic, key, value, hdrs) in enumerate(messages):
        out.append(decoders[topic](_Msg(settings.topic(topic), i, key.encode(), value, hdrs)))
    return out


@dataclass
class _Msg:  # enough of confluent_kafka.Message for TopicDecoder
    _topic: str
    _offset: int
    _key: bytes
    _value: bytes
    _headers: list

    def value(self): return self._value
    def key(self): return self._key
    def headers(self): return self._headers
    def partition(self): return 0
    def offset(self): return self._offset
    def topic(self): return self._topic


# -- measurements ----------------------------------------------------------------------------------
class Cpu:
    """CPU seconds used by the servers and by this process (where the sink runs)."""

    def __init__(self, stack) -> None:
        self.procs = {name: psutil.Process(p.pid) for name, p in stack.processes.items()}
        self.procs["sink process"] = psutil.Process()

    def snapshot(self) -> dict[str, float]:
        out = {}
        for name, proc in self.procs.items():
            try:
                t = proc.cpu_times()
                out[name] = t.user + t.system
            except psutil.Error:
                out[name] = 0.0
        return out


@dataclass
class SinkRun:
    rate: float
    seconds: float
    decode: float
    write: float
    commit: float
    wait: float
    cpu_us: dict[str, float]  # CPU microseconds per record, per process
    threads_us: dict[str, float]  # ... per thread of the sink process
    machine_cores: float = 0.0  # cores busy on the whole machine meanwhile (other processes too)


def thread_cpu() -> dict[int, float]:
    """CPU seconds of this process's threads, by native id."""
    return {t.id: t.user_time + t.system_time for t in psutil.Process().threads()}


def by_thread(before: dict[int, float], after: dict[int, float], names: dict[int, str]) -> dict[str, float]:
    """CPU seconds used per named thread; the unnamed ones (librdkafka's, the DLQ
    producer's) as "kafka client and other threads"."""
    out: dict[str, float] = {}
    for tid, seconds in after.items():
        name = names.get(tid, "kafka client and other threads")
        out[name] = out.get(name, 0.0) + seconds - before.get(tid, 0.0)
    return out


def run_sink(sink, settings: Settings, topics: list[str], total: int, cpu: Cpu) -> SinkRun:
    """Run one sink (in this process) until it wrote `total` records; rate from first consume.
    The garbage collector is set as in a sink process (`settled_gc`): the bench's own data
    (the messages, the baselines' decoded records: ~10 objects per record) is frozen with
    the rest of the heap meanwhile, as a sink process does not hold it."""
    with settled_gc():
        return _run_sink(sink, settings, topics, total, cpu)


def _run_sink(sink, settings: Settings, topics: list[str], total: int, cpu: Cpu) -> SinkRun:
    stop = threading.Event()
    runner = SinkRunner(sink, settings, group_id=f"bench-{uuid.uuid4().hex[:8]}", topics=topics,
                        service=f"bench-{sink.name}", stop=stop)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 900
    while runner.stats.consumed == 0 and time.monotonic() < deadline:
        time.sleep(0.002)
    before, threads_before, machine_before = cpu.snapshot(), thread_cpu(), _machine_busy()
    started = time.perf_counter()
    while runner.stats.written < total and time.monotonic() < deadline and thread.is_alive():
        time.sleep(0.005)
    seconds = time.perf_counter() - started
    after, threads_after, machine_after = cpu.snapshot(), thread_cpu(), _machine_busy()
    names = {thread.native_id: "consumer thread", threading.get_native_id(): "bench main thread"}
    names.update({t.native_id: "writer thread" for t in runner._writer._threads})
    stop.set()
    thread.join(60)
    s = runner.stats
    if s.written < total:
        raise RuntimeError(f"{sink.name} sink wrote {s.written} of {total}")
    used = {k: (after[k] - before[k]) * 1e6 / total for k in after}
    threads = {k: v * 1e6 / total for k, v in by_thread(threads_before, threads_after, names).items()}
    return SinkRun(total / seconds, seconds, s.decode_seconds, s.write_seconds, s.commit_seconds,
                   s.wait_seconds, used, threads, (machine_after - machine_before) / seconds)


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (every process, not only ours)."""
    t = psutil.cpu_times()
    return (sum(t) - t.idle - getattr(t, "iowait", 0.0) - getattr(t, "steal", 0.0) - getattr(t, "guest", 0.0)
            - getattr(t, "guest_nice", 0.0))


def consume_rate(settings: Settings, topics: list[str], total: int) -> float:
    """Bare consumption (same consumer settings as the sinks), from the first message on."""
    consumer = Consumer(consumer_config(settings, f"bench-bare-{uuid.uuid4().hex[:8]}", **BULK_CONSUMER))
    consumer.subscribe([settings.topic(t) for t in topics])
    seen, first, started = 0, 0, None
    deadline = time.monotonic() + 300
    while seen < total and time.monotonic() < deadline:
        msgs = consumer.consume(500, 0.5)
        if msgs and started is None:
            started, first = time.perf_counter(), len(msgs)
        seen += sum(1 for m in msgs if m.error() is None)
    rate = (seen - first) / max(time.perf_counter() - started, 1e-9)
    consumer.close()
    return rate


def raw_mongo(settings: Settings, records: list[SinkRecord], batch: int) -> float:
    client = mongo_client(settings)
    db = client[settings.mongo_db]
    ensure_indexes(db, settings)
    docs = [(MONGO_COLLECTIONS[r.topic], to_document(r)) for r in records]
    started = time.perf_counter()
    for i in range(0, len(docs), batch):
        by_coll: dict[str, list] = {}
        for coll, doc in docs[i:i + batch]:
            by_coll.setdefault(coll, []).append(ReplaceOne({"_id": doc["_id"]}, doc, upsert=True))
        for coll, ops in by_coll.items():
            db[coll].bulk_write(ops, ordered=False)
    rate = len(docs) / (time.perf_counter() - started)
    client.close()
    return rate


def raw_redis_pipeline(settings: Settings, records: list[SinkRecord], batch: int) -> float:
    """The sink's effects with a plain MULTI/EXEC pipeline per batch (seq counted client-side)."""
    client = redis_client(settings, socket_timeout=60)
    ttl, maxlen = settings.redis_latest_ttl_seconds, settings.redis_history_len
    seqs: dict[str, int] = {}
    effects = [(r, ROUTES[r.topic](r)) for r in records]
    started = time.perf_counter()
    for i in range(0, len(effects), batch):
        pipe = client.pipeline(transaction=True)
        for r, fx in effects[i:i + batch]:
            pipe.set(fx.latest, r.value, ex=ttl)
            pipe.sadd("products", fx.product)
            if fx.expiry:
                pipe.zadd(f"expiries:{fx.product}", {fx.expiry: 0})
            if fx.publish:
                channel, event, rooms = fx.publish.split(b"\x1f")
                for room in rooms.split(b","):
                    seq = seqs[room] = seqs.get(room, 0) + 1
                    env = b'{"room":"%s","seq":%d,"epoch":"e","event":"%s","data":%s}' % (room, seq, event, r.value)
                    pipe.incr(b"seq:" + room)
                    pipe.publish(channel, env)
                    pipe.xadd(b"history:" + room, {"env": env}, id=f"{seq}-0", maxlen=maxlen, approximate=True)
        pipe.hset("sink:offsets:raw", "t:0", i)
        pipe.execute()
    rate = len(effects) / (time.perf_counter() - started)
    client.close()
    return rate


def raw_redis_script(settings: Settings, records: list[SinkRecord], batch: int) -> float:
    """The sink's own write (one Lua call per chunk) on pre-decoded records: no Kafka."""
    sink = RedisSink(settings, f"raw-{uuid.uuid4().hex[:6]}")
    sink.start()
    started = time.perf_counter()
    for i in range(0, len(records), batch):
        part = records[i:i + batch]
        sink.write(Batch(part, {(part[-1].kafka_topic, 0): part[-1].offset}))
    rate = len(records) / (time.perf_counter() - started)
    sink.close()
    return rate


# -- the report ------------------------------------------------------------------------------------
def _bottleneck(run: SinkRun) -> str:
    """Where the sink's time and the machine's CPU went."""
    other = max(0.0, run.seconds - run.write)
    cpu = ", ".join(f"{k} {v:.0f}" for k, v in sorted(run.cpu_us.items(), key=lambda kv: -kv[1]))
    total = sum(run.cpu_us.values())
    cores = psutil.cpu_count() or 1
    busy = total * run.rate / 1e6
    others = max(0.0, run.machine_cores - busy)  # other processes on the machine (other runs)
    writer = 100 * run.write / run.seconds
    verdict = ("the store: the writer was busy {:.0f}% of the time".format(writer) if writer > 85
               else "CPU: {:.1f} of {} cores busy ({:.1f} by other processes)".format(
                   run.machine_cores, cores, others) if run.machine_cores > 0.85 * cores
               else "the consumer side (Kafka fetch, decode)")
    return (f"bottleneck: {verdict}; writer busy {writer:.0f}%, consumer decode {100 * run.decode / run.seconds:.0f}%, "
            f"waiting for the writer {100 * run.wait / run.seconds:.0f}%, committing {100 * run.commit / run.seconds:.0f}%; CPU us/record: {cpu} "
            f"(total {total:.0f}, {busy:.2f} cores; the machine: {run.machine_cores:.2f}); sink process by thread: "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(run.threads_us.items(), key=lambda kv: -kv[1])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=30, help="feed snapshots for the mongo run (1040 records each)")
    parser.add_argument("--small", type=int, default=60_000, help="small records for redis-small")
    parser.add_argument("--chains", type=int, default=3_000, help="chain snapshots for redis-chains")
    parser.add_argument("--batch-size", type=int, default=None, help="sink_batch_size (default: settings)")
    parser.add_argument("--no-validate", action="store_true", help="sink_validate=False")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each measurement (median)")
    parser.add_argument("--only", choices=["mongo", "redis-small", "redis-chains"], action="append")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    only = set(args.only or ["mongo", "redis-small", "redis-chains"])

    rows = []
    script_cpu: dict[str, list[dict[str, float]]] = {}  # bare script runs: CPU us/record
    with tempfile.TemporaryDirectory(prefix="bench-sinks-") as tmp, start_stack(Path(tmp)) as stack:
        base = stack.settings
        cpu = Cpu(stack)
        changes = {"sink_validate": not args.no_validate}
        if args.batch_size:
            changes["sink_batch_size"] = args.batch_size
        batch = args.batch_size or base.sink_batch_size
        redis_base = base.redis_uri.rsplit("/", 1)[0]
        dbs = itertools.cycle(range(16))

        def fresh(settings: Settings, tag: str) -> Settings:
            """The same servers, an empty MongoDB database and an empty Redis db."""
            fresh_settings = settings.model_copy(update={"mongo_db": f"{settings.mongo_db}_{tag}",
                                                         "redis_url": f"{redis_base}/{next(dbs)}"})
            client = redis_client(fresh_settings)
            client.flushdb()
            client.close()
            return fresh_settings

        def scenario(name: str, messages: list[Message], topics: list[str], store: str) -> None:
            settings = base.model_copy(update={**changes, "mongo_db": f"bench_{name.replace('-', '_')}"})
            records = decoded(settings, messages)
            size = sum(len(m[2]) for m in messages) / len(messages)
            kafka, runs = [], []
            raws: dict[str, list[float]] = {}
            if store == "mongo":  # a fresh nx-27017 writes its first documents at half speed
                raw_mongo(fresh(settings, "warmup"), records[:5000], batch)
            for i in range(args.repeat):
                run_settings = fresh(settings.model_copy(update={"topic_prefix": f"bench-{name}-{i}."}), f"sink{i}")
                produced = preload(run_settings, messages)
                if i == 0:
                    print(f"{name}: {len(messages):,} records, {size:,.0f} bytes avg, preloaded at "
                          f"{produced:,.0f}/s", flush=True)
                kafka.append(consume_rate(run_settings, topics, len(messages)))
                if store == "mongo":
                    raws.setdefault("bulk_write", []).append(raw_mongo(fresh(settings, f"raw{i}"), records, batch))
                    runs.append(run_sink(MongoSink(run_settings), run_settings, topics, len(messages), cpu))
                else:
                    before = cpu.snapshot()
                    raws.setdefault("script", []).append(raw_redis_script(fresh(settings, "s"), records, batch))
                    after = cpu.snapshot()
                    # What the script costs inside Redis, and the Python that drives it.
                    script_cpu.setdefault(name, []).append(
                        {k: (after[k] - before[k]) * 1e6 / len(records) for k in ("redis", "sink process")})
                    runs.append(run_sink(RedisSink(run_settings, "bench-sink"), run_settings, topics,
                                         len(messages), cpu))
                    raws.setdefault("pipeline", []).append(
                        raw_redis_pipeline(fresh(settings, "p"), records, batch))
                print(f"  run {i + 1}: sink {runs[-1].rate:,.0f}/s; "
                      + "; ".join(f"bare {k} {v[-1]:,.0f}/s" for k, v in raws.items())
                      + f"; bare consume {kafka[-1]:,.0f}/s", flush=True)
            run = sorted(runs, key=lambda r: r.rate)[len(runs) // 2]
            rows.append((name, len(messages), run, {k: statistics.median(v) for k, v in raws.items()},
                         statistics.median(kafka)))

        if "mongo" in only:
            scenario("mongo", feed_messages(base, args.snapshots),
                     [MARKET_UNDERLYING, MARKET_OPTION_QUOTES, MARKET_OPTION_CHAINS], "mongo")
        if "redis-small" in only:
            scenario("redis-small", small_messages(base, args.small),
                     [MARKET_UNDERLYING, ANALYTICS_UNDERLYING, ANALYTICS_CHAIN], "redis")
        if "redis-chains" in only:
            scenario("redis-chains", chain_messages(base, args.chains), [MARKET_OPTION_CHAINS], "redis")

    print()
    print(f"sink batch size {batch}, validation {'off' if args.no_validate else 'on'}, "
          f"median of {args.repeat}, {psutil.cpu_count()} CPUs shared by the sink and all servers")
    print(f"{'scenario':<13} {'records':>8} {'sink rec/s':>11} {'bare rec/s':>22} {'sink/bare':>10} "
          f"{'consume/s':>10}")
    for name, n, run, raws, kafka in rows:
        for i, (kind, raw) in enumerate(raws.items()):
            print(f"{name if i == 0 else '':<13} {n if i == 0 else '':>8} "
                  f"{f'{run.rate:,.0f}' if i == 0 else '':>11} {f'{raw:,.0f} ({kind})':>22} "
                  f"{100 * run.rate / raw:>9.0f}% {f'{kafka:,.0f}' if i == 0 else '':>10}")
    print()
    for name, n, run, raws, kafka in rows:
        print(f"{name}: {_bottleneck(run)}")
    for name, runs in script_cpu.items():
        print(f"{name}: bare script CPU us/record (median): redis "
              f"{statistics.median(r['redis'] for r in runs):.1f}, driving process (Python) "
              f"{statistics.median(r['sink process'] for r in runs):.1f}")
    for name, n, run, raws, kafka in rows:
        if name.startswith("redis"):
            verdict = "meets" if run.rate >= 50_000 else "misses"
            print(f"{name}: {run.rate:,.0f} records/s {verdict} the 50,000/s Redis target")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
