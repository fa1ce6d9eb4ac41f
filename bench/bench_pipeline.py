"""The whole pipeline at a given option-quote rate: what each stage sustains, how late a
quote reaches a WebSocket client and MongoDB, and what every process costs.

    deltastream bench pipeline --rate 5000 --duration 30 [--clients 4] [--max]

Runs the embedded servers on free ports (or the servers DELTASTREAM_KAFKA_BOOTSTRAP /
_MONGO_URL / _REDIS_URL name) and the real processes: feed, processor worker, both sinks
and the socket gateway, each a `deltastream` subprocess. The feed's chain size is fixed by
--products/--expiries/--strikes; the rate sets the snapshot interval.

Stages (sustained = counted over the measured window, after a warm-up):
  feed        option quotes on market.option_quotes (Kafka end offsets; with --chains-only,
              the quotes inside the chain snapshots on market.option_chains)
  processors  quotes inside the chain snapshots turned into analytics.chain records
  mongodb     option_quotes documents stored by the Mongo sink (--chains-only: the quotes
              inside the stored option_chains documents)
  websocket   quotes inside the chain_update messages a client receives (per client)
Latency: a chain's event time (the feed stamps wall-clock time) to its arrival at a client,
and until MongoDB holds it (or, with quote records, its last quote; sampled on the chains
the clients receive, one at a time); the client p99 also per 10 s of the run (the embedded
broker's fetch cost grows with its history, so the p99 drifts up over minutes: README,
Known limits); with --breakdown also where chains leave Kafka and Redis on their way to the
clients. Prints; asserts nothing.
"""
from __future__ import annotations

import argparse
import atexit
import asyncio
import json
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import psutil
import websockets
from confluent_kafka import Consumer

from deltastream.clients import consumer_config, end_offsets, live_fetch_wait, mongo_client, redis_client
from deltastream.runtime.fleet import Fleet, process_usage
from deltastream.runtime.stack import Stack, free_port, start_stack
from deltastream.runtime.topics import ensure_topics
from deltastream.settings import DEFAULT_PRODUCTS, Settings
from gateways.common.tokens import issue_token
from schemas.topics import ANALYTICS_CHAIN, MARKET_OPTION_CHAINS, MARKET_OPTION_QUOTES, TOPICS
from sinks.decode import parse_time
from sinks.redis_sink import CH_CHAIN

STAGES = ("feed", "processors", "mongodb", "websocket")
PROCESSES = ("processor", "sink-mongo", "sink-redis", "socket", "feed")
LATENCY_TARGET_MS = 100.0
WINDOW_S = 10.0  # the ws p99 is also shown per window of this many seconds


@dataclass
class Level:
    offered: float
    sustained: dict[str, float] = field(default_factory=dict)
    ws_latency_ms: list[float] = field(default_factory=list)
    ws_arrival_s: list[float] = field(default_factory=list)  # seconds into the window, per latency
    mongo_lag_ms: list[float] = field(default_factory=list)
    usage: dict[str, tuple[float, float]] = field(default_factory=dict)  # name → (CPU %, RSS MiB)
    deliveries: int = 0
    # --breakdown: the same latency where a chain leaves Kafka ("kafka": a reader like the
    # Redis sink's live lane) and Redis ("redis": a pub/sub subscriber like the gateway)
    tap_ms: dict[str, list[float]] = field(default_factory=dict)
    machine_busy: float = float("nan")  # share of all cores busy over the window
    errors: list[str] = field(default_factory=list)

    def windows(self, seconds: float = WINDOW_S) -> list[float]:
        """ws p99 per `seconds` of the measured window: whether the latency holds or drifts."""
        buckets: dict[int, list[float]] = {}
        for at, ms in zip(self.ws_arrival_s, self.ws_latency_ms):
            buckets.setdefault(int(at // seconds), []).append(ms)
        full = [buckets.get(i, []) for i in range(max(buckets, default=-1) + 1)]
        if len(full) > 1 and len(full[-1]) < len(full[0]) / 2:
            full.pop()  # a last window cut short
        return [self.pct(v, 0.99) for v in full]

    def pct(self, values: list[float], q: float) -> float:
        if not values:
            return float("nan")
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def saturated(self) -> str | None:
        """The first stage that kept less than 90% of the offered rate."""
        return next((s for s in STAGES if self.sustained.get(s, 0.0) < 0.9 * self.offered), None)

    @property
    def ok(self) -> bool:
        return self.saturated is None and self.pct(self.ws_latency_ms, 0.99) <= LATENCY_TARGET_MS


def quotes_per_chain(strikes: int) -> int:
    return (2 * strikes + 1) * 2


def records_in(settings: Settings, topic: str) -> int:
    consumer = Consumer(consumer_config(settings, f"bench-offsets-{uuid.uuid4().hex[:6]}"))
    try:
        name = settings.topic(topic)
        parts = range(TOPICS[topic].partitions)
        return sum(end_offsets(settings, consumer, [(name, p) for p in parts]).values())
    finally:
        consumer.close()


class Clients:
    """WebSocket clients subscribed to every product's chain room, in a thread of their own."""

    def __init__(self, url: str, products: list[str], count: int) -> None:
        self.url, self.products, self.count = url, products, count
        self.latencies: list[float] = []
        self.arrivals: list[float] = []  # when each latency was taken (time.monotonic())
        self.chains = 0  # chain_update messages received, all clients
        self.measuring = False
        # the newest chain received: its event_id, its last quote's event_id, its event time
        self.newest: tuple[str, str, float] | None = None
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)

    async def _client(self) -> None:
        try:
            async with websockets.connect(self.url, max_size=None, open_timeout=30) as ws:
                for p in self.products:
                    await ws.send(orjson.dumps({"action": "subscribe", "type": "chain", "symbol": p}))
                while not self._stop.is_set():
                    try:
                        raw = await asyncio.wait_for(ws.recv(), 0.5)
                    except asyncio.TimeoutError:
                        continue
                    now = time.time()
                    msg = orjson.loads(raw)
                    if msg.get("event") != "chain_update" or msg.get("snapshot"):
                        continue
                    if self.measuring:
                        self.chains += 1
                        data = msg["data"]
                        sent = parse_time(data["timestamp"], "timestamp").timestamp()
                        self.latencies.append((now - sent) * 1000)
                        self.arrivals.append(time.monotonic())
                        self.newest = (data["event_id"], data["calls"][-1]["event_id"], sent)
        except Exception as exc:  # noqa: BLE001 - reported in the table
            self.errors.append(f"{type(exc).__name__}: {exc}")

    async def _main(self) -> None:
        await asyncio.gather(*(self._client() for _ in range(self.count)))


class Taps:
    """Where the time goes: a chain's event time to its arrival at a Kafka reader of the chain
    topic configured as the Redis sink's live lane (the feed and the broker hop), and at a
    Redis subscriber of the channel the gateway listens to (plus the sink's decode, write and
    PUBLISH), each in a thread of the bench."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.measuring = False
        self.ms: dict[str, list[float]] = {"kafka": [], "redis": []}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._guard(f), daemon=True)
                         for f in (self._kafka, self._redis)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(15)

    def _guard(self, run):
        def guarded() -> None:
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - reported in the table
                self.errors.append(f"tap {run.__name__}: {type(exc).__name__}: {exc}")
        return guarded

    def _kafka(self) -> None:
        conf = consumer_config(self.settings, f"bench-tap-{uuid.uuid4().hex[:6]}",
                               **{"auto.offset.reset": "latest", **live_fetch_wait(self.settings)})
        consumer = Consumer(conf)
        consumer.subscribe([self.settings.topic(MARKET_OPTION_CHAINS)])
        try:
            while not self._stop.is_set():
                # consume(n, t) waits for n messages or t: wait for one, then take what is there
                messages = consumer.consume(1, 0.2)
                for msg in messages + (consumer.consume(1000, 0) if messages else []):
                    if self.measuring and msg.error() is None:
                        self.ms["kafka"].append(time.time() * 1000 - msg.timestamp()[1])
        finally:
            consumer.close()

    def _redis(self) -> None:
        client = redis_client(self.settings)
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe(CH_CHAIN)
        try:
            while not self._stop.is_set():
                message = pubsub.get_message(timeout=0.2)
                if message is None or not self.measuring:
                    continue
                now = time.time()
                sent = parse_time(orjson.loads(message["data"])["data"]["timestamp"], "timestamp")
                self.ms["redis"].append((now - sent.timestamp()) * 1000)
        finally:
            pubsub.close()
            client.close()


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.25)


def run_level(stack: Stack, workdir: Path, rate: float, duration: float, warmup: float,
              clients: int, products: list[str], expiries: int, strikes: int, redis_db: int,
              quote_records: bool = True, breakdown: bool = False) -> Level:
    per_snapshot = len(products) * expiries * quotes_per_chain(strikes)
    unique = uuid.uuid4().hex[:8]
    settings = stack.with_settings(
        topic_prefix=f"bench{unique}.", processor_app_id=f"bench-{unique}", mongo_db=f"bench_{unique}",
        redis_url=f"{stack.settings.redis_uri.rsplit('/', 1)[0]}/{redis_db}", products=products,
        feed_expiries=expiries, feed_strikes_per_side=strikes, feed_interval=per_snapshot / rate,
        socket_port=free_port(), api_port=free_port(), data_dir=workdir / unique)
    ensure_topics(settings)
    env = stack.env | {
        "DELTASTREAM_TOPIC_PREFIX": settings.topic_prefix, "DELTASTREAM_PROCESSOR_APP_ID": settings.processor_app_id,
        "DELTASTREAM_MONGO_DB": settings.mongo_db, "DELTASTREAM_REDIS_URL": settings.redis_url,
        "DELTASTREAM_PRODUCTS": json.dumps(products), "DELTASTREAM_FEED_EXPIRIES": str(expiries),
        "DELTASTREAM_FEED_STRIKES_PER_SIDE": str(strikes), "DELTASTREAM_FEED_INTERVAL": repr(settings.feed_interval),
        "DELTASTREAM_SOCKET_PORT": str(settings.socket_port), "DELTASTREAM_API_PORT": str(settings.api_port),
        "DELTASTREAM_DATA_DIR": str(settings.data_dir), "DELTASTREAM_LOG_SHIP_LEVEL": "",
        "DELTASTREAM_LOG_LEVEL": "WARNING", "PYTHONUNBUFFERED": "1",
        "DELTASTREAM_FEED_PUBLISH_QUOTES": "true" if quote_records else "false"}
    fleet = Fleet(settings, env, settings.data_dir / "logs", only=PROCESSES)
    level = Level(offered=rate)
    db = mongo_client(settings)[settings.mongo_db]
    for name in PROCESSES[:-1]:
        fleet.start(name)
    token, _ = issue_token(settings, "bench", "access")
    ws = Clients(f"ws://{settings.host}:{settings.socket_port}/ws?token={token}", products, clients)
    taps = Taps(settings) if breakdown else None
    try:
        wait_for(lambda: _listening(settings.socket_port), 60, "the socket gateway")
        ws.start()
        if taps is not None:
            taps.start()
        time.sleep(12)  # the worker joins its group (about half the session timeout on Tansu)
        fleet.start("feed")
        time.sleep(warmup)
        base = _counts(settings, db, ws, strikes, quote_records)
        cpu0 = fleet.usage() | process_usage(stack.processes) | _own_usage()
        machine0 = psutil.cpu_times()
        t0 = time.monotonic()
        ws.measuring = True
        if taps is not None:
            taps.measuring = True
        stored = db.option_quotes if quote_records else db.option_chains
        while time.monotonic() - t0 < duration:
            lag = _mongo_latency(stored, ws.newest, quote_records, deadline=t0 + duration + 10)
            if lag is not None:
                level.mongo_lag_ms.append(lag)
            time.sleep(0.2)
        ws.measuring = False
        if taps is not None:
            taps.measuring = False
            level.tap_ms = taps.ms
        elapsed = time.monotonic() - t0
        cpu1 = fleet.usage() | process_usage(stack.processes) | _own_usage()
        machine1 = psutil.cpu_times()
        total = sum(machine1) - sum(machine0)
        level.machine_busy = 1 - (machine1.idle - machine0.idle) / total if total > 0 else float("nan")
        end = _counts(settings, db, ws, strikes, quote_records)
        level.sustained = {s: (end[s] - base[s]) / elapsed for s in STAGES}
        level.sustained["websocket"] /= max(clients, 1)
        level.ws_latency_ms = ws.latencies
        level.ws_arrival_s = [at - t0 for at in ws.arrivals]
        level.deliveries = ws.chains
        level.usage = {n: (100 * (cpu1[n][0] - cpu0[n][0]) / elapsed, cpu1[n][1])
                       for n in cpu1 if n in cpu0}
        level.errors = (ws.errors + (taps.errors if taps is not None else [])
                        + [f"{n} exited" for n in PROCESSES if not fleet.alive(n)])
    finally:
        ws.stop()
        if taps is not None:
            taps.stop()
        fleet.stop_all(timeout=20)
        db.client.drop_database(settings.mongo_db)
        db.client.close()
    return level


def _mongo_latency(stored, newest: tuple[str, str, float] | None, quote_records: bool,
                   deadline: float) -> float | None:
    """ms from a record's event time until MongoDB holds it: the chain a client received last
    (or its last quote), looked up by `_id` every 10 ms. A point read by `_id`: a query sorted
    on time scanned the collection and cost nx-27017 a fifth of a core (the bench loading
    what it measures)."""
    if newest is None:
        return None
    chain_id, quote_id, sent = newest
    wanted = {"_id": quote_id if quote_records else chain_id}
    while time.monotonic() < deadline:
        if stored.find_one(wanted, {"_id": 1}) is not None:
            return (time.time() - sent) * 1000
        time.sleep(0.01)
    return None


def _own_usage() -> dict[str, tuple[float, float]]:
    """The bench process itself (the WebSocket clients' thread, the MongoDB latency reads,
    --breakdown's taps)."""
    me = psutil.Process()
    times = me.cpu_times()
    return {"bench": (times.user + times.system, me.memory_info().rss / 2**20)}


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _counts(settings: Settings, db, ws: Clients, strikes: int, quote_records: bool) -> dict[str, int]:
    """Option quotes past each stage: one record each, or inside chain snapshots only."""
    per_chain = quotes_per_chain(strikes)
    if quote_records:
        feed, stored = records_in(settings, MARKET_OPTION_QUOTES), db.option_quotes.estimated_document_count()
    else:
        feed = records_in(settings, MARKET_OPTION_CHAINS) * per_chain
        stored = db.option_chains.estimated_document_count() * per_chain
    return {"feed": feed, "processors": records_in(settings, ANALYTICS_CHAIN) * per_chain,
            "mongodb": stored, "websocket": ws.chains * per_chain}


def report(levels: list[Level], clients: int) -> None:
    print()
    print(f"{'offered q/s':>11} " + " ".join(f"{s:>11}" for s in STAGES)
          + f" {'ws p50':>7} {'ws p99':>7} {'ws max':>7} {'mongo p50':>9} {'mongo p99':>9}  first to saturate")
    for lv in levels:
        print(f"{lv.offered:>11,.0f} " + " ".join(f"{lv.sustained.get(s, 0):>11,.0f}" for s in STAGES)
              + f" {lv.pct(lv.ws_latency_ms, .5):>7.0f} {lv.pct(lv.ws_latency_ms, .99):>7.0f}"
              f" {max(lv.ws_latency_ms, default=float('nan')):>7.0f}"
              f" {lv.pct(lv.mongo_lag_ms, .5):>9.0f} {lv.pct(lv.mongo_lag_ms, .99):>9.0f}  {lv.saturated or '-'}")
    print(f"(sustained option quotes/s per stage; websocket per client, {clients} clients; latencies in ms)")
    for lv in levels:
        windows = lv.windows()
        if len(windows) > 1:  # the embedded broker's fetch cost grows with its history (README)
            print(f"{lv.offered:>11,.0f}  ws p99 per {WINDOW_S:.0f} s: " + ", ".join(f"{v:.0f}" for v in windows))
    if any(lv.tap_ms for lv in levels):
        print("\nwhere the time goes (a chain's event time to its arrival; p50 / p99 / max ms):")
        for lv in levels:
            legs = {"out of Kafka": lv.tap_ms.get("kafka", []), "out of Redis": lv.tap_ms.get("redis", []),
                    "at a client": lv.ws_latency_ms}
            print(f"{lv.offered:>11,.0f}  " + "   ".join(
                f"{name} {lv.pct(v, .5):.0f} / {lv.pct(v, .99):.0f} / {max(v, default=float('nan')):.0f}"
                for name, v in legs.items()))
    last = levels[-1]
    print("\nper process at {:,.0f} quotes/s: ".format(last.offered)
          + ", ".join(f"{n} {cpu:.0f}% CPU {rss:.0f} MiB" for n, (cpu, rss) in sorted(last.usage.items()))
          + f"; the machine's {psutil.cpu_count()} cores {100 * last.machine_busy:.0f}% busy")
    for lv in levels:
        if lv.errors:
            print(f"at {lv.offered:,.0f}/s: " + "; ".join(sorted(set(lv.errors))[:5]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="deltastream bench pipeline", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=2000, help="offered option quotes/s")
    parser.add_argument("--duration", type=float, default=20, help="measured seconds per rate")
    parser.add_argument("--warmup", type=float, default=8, help="seconds of feed before measuring")
    parser.add_argument("--clients", type=int, default=4, help="WebSocket clients (each in every chain room)")
    parser.add_argument("--products", type=int, default=len(DEFAULT_PRODUCTS), choices=range(1, 9))
    parser.add_argument("--expiries", type=int, default=3)
    parser.add_argument("--strikes", type=int, default=10, help="strikes per side of the money")
    parser.add_argument("--chains-only", action="store_true",
                        help="the feed publishes chain snapshots only (no market.option_quotes records): "
                             "quotes travel inside the chains, one Kafka record per chain")
    parser.add_argument("--breakdown", action="store_true",
                        help="also time chains where they leave Kafka and Redis (one more reader of each)")
    parser.add_argument("--keep", action="store_true", help="keep the servers' data and the process logs")
    parser.add_argument("--max", action="store_true",
                        help=f"double the rate from --rate until a stage saturates or p99 > {LATENCY_TARGET_MS:.0f} ms")
    args = parser.parse_args(argv)
    if args.rate <= 0 or args.duration <= 0:
        parser.error("--rate and --duration must be positive")
    products = list(DEFAULT_PRODUCTS[:args.products])
    levels: list[Level] = []
    tmp = tempfile.mkdtemp(prefix="bench-pipeline-")
    if args.keep:
        print(f"data and logs in {tmp}")
    else:
        atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    with start_stack(Path(tmp)) as stack:
        rate, db = args.rate, 1
        while True:
            print(f"-- {rate:,.0f} option quotes/s for {args.duration:.0f}s "
                  f"({len(products)} products x {args.expiries} expiries x {quotes_per_chain(args.strikes)} quotes)",
                  flush=True)
            level = run_level(stack, Path(tmp), rate, args.duration, args.warmup, args.clients, products,
                              args.expiries, args.strikes, db, quote_records=not args.chains_only,
                              breakdown=args.breakdown)
            levels.append(level)
            print("   sustained: " + ", ".join(f"{s} {level.sustained[s]:,.0f}/s" for s in STAGES)
                  + f"; ws p99 {level.pct(level.ws_latency_ms, .99):.0f} ms", flush=True)
            if not args.max or not level.ok or db >= 15:
                break
            rate, db = rate * 2, db + 1
    report(levels, args.clients)
    if args.max:
        passing = [lv.offered for lv in levels if lv.ok]
        print(f"\nhighest rate with every stage >= 90% of offered and ws p99 <= {LATENCY_TARGET_MS:.0f} ms: "
              + (f"{max(passing):,.0f} quotes/s" if passing else f"none (from {args.rate:,.0f}/s)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
