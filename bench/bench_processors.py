"""Stream-processor throughput and added latency, one worker, embedded Tansu by default.

    python -m bench.bench_processors [--chains 6000] [--ticks 40000] [--quotes 40000] [--seconds 10]

Sustained rate: a backlog of N records is published first, then one worker (a
`stream_processors.run` subprocess, as deployed) drains it; the rate is N over the time
between its first and last output (as received by a consumer here), so start-up and group
join are not counted; CPU µs per record is the worker's CPU time over the same span, over
N (load-independent, unlike the rate). Added latency: records are published at half the
target rate while the worker runs; latency = time the output was received here - input
message create time (Kafka, this host), paired by event id (chain analytics, enriched
ticks). Outputs carry event time as their Kafka timestamp, so that is not usable.

Processor alone (`--only alone`, no broker): the chain unit's work on a batch as the worker
does it (fast decode, grouping by key, `ChainProcessor.apply_many`, the state's JSON round
trip, output encoding), CPU µs per snapshot, best of several runs: the primary figure on
a shared box. Batches of 40 (what a worker draining a backlog gets: ~1.5 snapshots per key)
and of 2,000 (`processor_batch_size`).

Chain snapshots are the default feed's shape with 20 strikes per side: 41 strikes, 82
quotes each (8 products x 3 expiries). Prints figures; asserts nothing.
"""
from __future__ import annotations

import argparse
import datetime as dt
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from confluent_kafka import Consumer, Producer

from deltastream.clients import consumer_config, producer_config
from deltastream.runtime.topics import ensure_topics
from producers.feed.products import PRODUCTS
from producers.feed.records import chain_records, iso_utc, underlying_record
from producers.feed.synthetic import SyntheticMarket
from schemas.codec import encode_dict, headers
from schemas.records import OptionChain, OptionQuote, UnderlyingTick
from schemas.topics import (ANALYTICS_CHAIN, ANALYTICS_OHLC, ANALYTICS_UNDERLYING,
                            MARKET_OPTION_CHAINS, MARKET_OPTION_QUOTES, MARKET_UNDERLYING)
from deltastream.runtime.processor_worker import Worker
from deltastream.runtime.stack import start_stack

T0 = dt.datetime(2026, 11, 23, 4, 0, tzinfo=dt.timezone.utc)
HEADERS = {MARKET_UNDERLYING: headers(UnderlyingTick.SCHEMA), MARKET_OPTION_QUOTES: headers(OptionQuote.SCHEMA),
           MARKET_OPTION_CHAINS: headers(OptionChain.SCHEMA)}


def generate(kind: str, n: int, start: dt.datetime = T0, step: float = 0.02,
             close_windows: bool = False) -> list[tuple[str, str, bytes]]:
    """n records of one kind as (topic, key, value), in feed order. Snapshots are `step`
    seconds of event time apart: a busy market, each instrument quoted many times a second
    (so bars update about once a second of event time, not once per record).

    close_windows: the last records are one snapshot two minutes later, which closes every
    open 1m window, so the worker's last outputs (final bars) mark the end of its input
    (otherwise a quote backlog of a fraction of a second of event time gives bar updates only
    at its start, and the drain's "last output" says nothing about when it finished)."""
    market = SyntheticMarket(list(PRODUCTS.values()), seed=1, strikes_per_side=20, expiries=3)
    out: list[tuple[str, str, bytes]] = []
    now = start
    if close_windows:
        head = generate(kind, n, start, step)
        tail = generate(kind, n, start + dt.timedelta(minutes=2), step)
        per_snapshot = len({key for _, key, _ in head})
        return head[:n - per_snapshot] + tail[:per_snapshot]
    while len(out) < n:
        snap = market.step(now)
        ts = iso_utc(now)
        if kind == "ticks":
            out += [(MARKET_UNDERLYING, u.product, encode_dict(underlying_record(u, ts))) for u in snap.underlyings]
        else:
            tick_ids = {u.product: u.tick_id for u in snap.underlyings}
            for frame in snap.chains:
                calls, puts, chain = chain_records(frame, ts, tick_ids[frame.product])
                if kind == "quotes":
                    out += [(MARKET_OPTION_QUOTES, q["symbol"], encode_dict(q)) for q in calls + puts]
                else:
                    out.append((MARKET_OPTION_CHAINS, f"{frame.product}|{chain['expiry']}", encode_dict(chain)))
        now += dt.timedelta(seconds=step)
    return out[:n]


def publish(settings, records, rate: float | None = None) -> float:
    producer = Producer(producer_config(settings, batched=True))  # as the feed publishes
    start = time.perf_counter()
    for i, (topic, key, value) in enumerate(records):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                producer.poll(0)
                time.sleep(delay)
        while True:
            try:
                producer.produce(settings.topic(topic), value, key, headers=HEADERS[topic])
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    return time.perf_counter() - start


class Collector(threading.Thread):
    """Reads output topics in the background: (receive time ms, value) per message.

    Receive time, not the Kafka timestamp: the processors stamp outputs with the record's
    event time (so analytics topics replay by time), which says nothing about when they were
    written. Short consume timeouts keep the receive time within ~10 ms of the write."""

    def __init__(self, settings, topics: list[str]) -> None:
        super().__init__(daemon=True)
        # a short fetch wait: on Tansu the reader's own wait would add to the measured latency
        self.consumer = Consumer(consumer_config(settings, f"bench-{uuid.uuid4().hex[:8]}",
                                                 **{"fetch.wait.max.ms": 5}))
        self.assigned = threading.Event()  # latency runs publish only once the reader is in
        self.consumer.subscribe([settings.topic(t) for t in topics],
                                on_assign=lambda _c, _parts: self.assigned.set())
        self.seen: dict[str, list[tuple[int, bytes]]] = {t: [] for t in topics}
        self.prefix = len(settings.topic_prefix)
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            batch = self.consumer.consume(2000, 0.01)
            now = time.time_ns() // 1_000_000
            for m in batch:
                if not m.error():
                    self.seen[m.topic()[self.prefix:]].append((now, m.value()))
        self.consumer.close()

    def count(self, topic: str) -> int:
        return len(self.seen[topic])


def input_times(settings, topic: str, n: int) -> dict[str, int]:
    """Event id → input message create time (ms)."""
    import orjson

    consumer = Consumer(consumer_config(settings, f"bench-in-{uuid.uuid4().hex[:8]}"))
    consumer.subscribe([settings.topic(topic)])
    out: dict[str, int] = {}
    deadline = time.monotonic() + 60
    while len(out) < n and time.monotonic() < deadline:
        for m in consumer.consume(5000, 0.5):
            if not m.error():
                out[orjson.loads(m.value())["event_id"]] = m.timestamp()[1]
    consumer.close()
    return out


def _cpu(proc) -> float:
    """User + system CPU seconds of the worker process so far."""
    t = proc.cpu_times()
    return t.user + t.system


def drain_rate(stack, tmp: Path, name: str, kind: str, n: int, out_topic: str,
               expect: int | None, profile: Path | None = None) -> tuple[float, float, str]:
    """n / (last output - first output), and the worker's CPU µs per record (its CPU time
    from the first output to the last, over n: start-up and group join excluded, like the
    rate); expect=None: outputs are not one per record (bars), so wait until they stop for a
    few seconds. `profile`: py-spy records the worker into this file (collapsed stacks)."""
    import psutil

    settings = stack.with_settings(topic_prefix=f"b{name}.", processor_app_id=f"bench-{name}-{uuid.uuid4().hex[:6]}",
                                   data_dir=tmp / name)
    ensure_topics(settings)
    records = generate(kind, n, close_windows=expect is None)
    publish(settings, records)
    collector = Collector(settings, [out_topic])
    collector.start()
    worker = Worker(stack, settings, tmp / f"{name}.log")
    proc = psutil.Process(worker.proc.pid)
    spy = None
    if profile is not None:
        import subprocess
        spy = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "-r", "100", "-f", "raw", "-o", str(profile), "--pid",
                                str(worker.proc.pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cpu_first = cpu_last = None
    try:
        deadline = time.monotonic() + 300
        last, changed = -1, time.monotonic()
        while time.monotonic() < deadline:
            count = collector.count(out_topic)
            if count and cpu_first is None:
                cpu_first = _cpu(proc)
            if expect is not None and count >= expect:
                cpu_last = _cpu(proc)
                break
            if count != last:
                last, changed = count, time.monotonic()
                cpu_last = _cpu(proc)
            elif count and time.monotonic() - changed > 4:
                break
            time.sleep(0.05)
        time.sleep(0.5)
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(30)
        worker.stop()
        collector.stop.set()
        collector.join()
    stamps = sorted(t for t, _ in collector.seen[out_topic])
    got = len(stamps)
    elapsed = (stamps[-1] - stamps[0]) / 1000 if got > 1 else float("nan")
    note = "" if expect is None or got >= expect else f" (only {got}/{expect} outputs)"
    cpu_us = (cpu_last - cpu_first) * 1e6 / n if cpu_first is not None and cpu_last is not None else float("nan")
    return n / elapsed, cpu_us, note


def latency(stack, tmp: Path, name: str, kind: str, rate: float, seconds: float, out_topic: str | None) -> tuple[float, float, int]:
    """p50, p99 and pairs of input → output latency through a worker; out_topic None: no
    worker, the input topic read back (one broker hop, the floor of each of the two hops
    inside the worker's figure). Separate runs: one reader of both topics slowed both."""
    settings = stack.with_settings(topic_prefix=f"l{name}.", processor_app_id=f"bench-l{name}-{uuid.uuid4().hex[:6]}",
                                   data_dir=tmp / f"l{name}")
    ensure_topics(settings)
    n = int(rate * seconds)
    records = generate(kind, n, start=T0)
    in_topic = records[0][0]
    read_topic = out_topic or in_topic  # no worker: one broker hop, the input itself
    collector = Collector(settings, [read_topic])
    collector.start()
    worker = Worker(stack, settings, tmp / f"l{name}.log") if out_topic else None
    try:
        if worker is not None:
            worker.wait_for("partitions assigned")
            time.sleep(1.0)
        # Records published before the reader joined its group would be read late and
        # counted as latency: wait for the assignment rather than a fixed time.
        if not collector.assigned.wait(60):
            raise RuntimeError("latency: the reader got no partitions within 60 s")
        publish(settings, records, rate=rate)
        deadline = time.monotonic() + 60
        while collector.count(read_topic) < n and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        if worker is not None:
            worker.stop()
        collector.stop.set()
        collector.join()
    return _pair(collector.seen[read_topic], input_times(settings, in_topic, n))


def _pair(seen: list[tuple[int, bytes]], sent: dict[str, int]) -> tuple[float, float, int]:
    import orjson

    lat = []
    for t_out, value in seen:
        t_in = sent.get(orjson.loads(value)["event_id"])
        if t_in is not None:
            lat.append(t_out - t_in)
    lat.sort()
    if not lat:
        return float("nan"), float("nan"), 0
    return statistics.median(lat), lat[min(len(lat) - 1, int(0.99 * len(lat)))], len(lat)


def processor_alone(n: int = 6000, batch: int = 40, repeat: int = 5) -> tuple[float, float]:
    """(decode, process + encode) CPU µs per snapshot, best of `repeat` passes over n
    snapshots in batches of `batch`, as `Pipeline.process` does it, without Faust."""
    import orjson

    from stream_processors.decode import CHAIN, Source, decode_many
    from stream_processors.dedupe import DEFAULT_LIMIT
    from stream_processors.outbox import Outbox
    from stream_processors.processors import SLICES, ChainProcessor

    sources = [Source(MARKET_OPTION_CHAINS, 0, i, key.encode(), value)
               for i, (_, key, value) in enumerate(generate("chains", n))]
    best = (float("inf"), float("inf"))
    for _ in range(repeat):
        processor, store, spent = ChainProcessor(DEFAULT_LIMIT), {}, [0.0, 0.0]
        for lo in range(0, n, batch):
            t0 = time.process_time()
            records, _ = decode_many(CHAIN, sources[lo:lo + batch])
            t1 = time.process_time()
            groups: dict[str, list] = {}
            for r in records:
                groups.setdefault(r.key, []).append(r)
            outbox = Outbox()
            results = processor.apply_many([(k, orjson.loads(store[k]) if k in store else None, rs)
                                            for k, rs in groups.items()])
            for key, (state, outputs) in zip(groups, results):
                store[key] = orjson.dumps(state)
                for o in outputs:
                    if o.topic == SLICES:
                        outbox.add("slices", o.key, orjson.dumps(o.record), [])
                    else:
                        outbox.add_dict(o.topic, o.key, o.record, o.schema)
            spent[0] += t1 - t0
            spent[1] += time.process_time() - t1
        if sum(spent) < sum(best):
            best = (spent[0], spent[1])
    return best[0] * 1e6 / n, best[1] * 1e6 / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chains", type=int, default=6000)
    parser.add_argument("--ticks", type=int, default=40000)
    parser.add_argument("--quotes", type=int, default=40000)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each latency run")
    parser.add_argument("--only", nargs="*", default=None,
                        choices=["alone", "chains", "ticks", "quotes", "latency"], help="run only these parts")
    parser.add_argument("--profile", type=Path, default=None,
                        help="directory: py-spy records the worker of each drain run (NAME.txt, collapsed stacks)")
    args = parser.parse_args()
    only = set(args.only or ["alone", "chains", "ticks", "quotes", "latency"])
    if "alone" in only:
        print("\nchain processor alone (no broker), CPU µs per snapshot, best of 5\n")
        for batch in (40, 2000):
            dec, proc = processor_alone(batch=batch)
            print(f"  batches of {batch:>5,}: decode {dec:4.0f}  process + encode {proc:4.0f}  total {dec + proc:4.0f}")
        sys.stdout.flush()
        if only == {"alone"}:
            return
    if args.profile is not None:
        args.profile.mkdir(parents=True, exist_ok=True)
    rows = []
    lat_rows = []
    drains = (("chains", args.chains, ANALYTICS_CHAIN, args.chains,
               "chain snapshots (82 quotes each) → analytics.chain + surfaces"),
              ("ticks", args.ticks, ANALYTICS_UNDERLYING, args.ticks,
               "underlying ticks → enriched + 1m/5m/15m bars"),
              ("quotes", args.quotes, ANALYTICS_OHLC, None, "option quotes → 1m bars per symbol"))
    with tempfile.TemporaryDirectory() as tmpdir, start_stack(Path(tmpdir) / "stack") as stack:
        tmp = Path(tmpdir)
        for name, n, topic, expect, label in drains:
            if name not in only:
                continue
            svg = None if args.profile is None else args.profile / f"{name}.txt"
            r, cpu_us, note = drain_rate(stack, tmp, name, name, n, topic, expect, svg)
            extra = f"{r * 82:,.0f} quotes/s" if name == "chains" else ""
            rows.append((label, f"{r:,.0f}/s", f"{cpu_us:,.0f} CPU µs/record {extra}{note}".strip()))
        for name, kind, rate, topic in (("chains", "chains", 500, ANALYTICS_CHAIN),
                                        ("ticks", "ticks", 2500, ANALYTICS_UNDERLYING),
                                        ("hopchains", "chains", 500, None), ("hopticks", "ticks", 2500, None)):
            if "latency" not in only:
                break
            p50, p99, n = latency(stack, tmp, name, kind, rate, args.seconds, topic)
            label = f"{kind} at {rate:,}/s" + ("" if topic else ": one broker hop, no worker")
            lat_rows.append((label, f"p50 {p50:.0f} ms", f"p99 {p99:.0f} ms ({n} paired)"))
    print("\nstream processors, one worker (embedded Tansu; this host's load varies)\n")
    for a, b, c in rows:
        print(f"  {a:<64} {b:>10}  {c}")
    print("\nadded latency, input record → output record (Kafka create times), half the target load;"
          "\ntwo broker hops are inside it (input → worker, output → reader)\n")
    for a, b, c in lat_rows:
        print(f"  {a:<64} {b:>10}  {c}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
