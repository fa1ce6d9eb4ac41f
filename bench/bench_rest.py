"""REST gateway throughput and latency against one real `deltastream serve api` process.

    python -m bench.bench_rest [--seconds 5] [--concurrency 32] [--rate 500] [--snapshots 30] [--workers 1] [--pin]

The data is what the real pipeline stores (simulated-clock feed, stream processor, both
sinks; `tests.gateways.dataset`). Every request carries a JWT and goes through the Redis
rate limiter (budgets set high enough never to refuse). Two figures per route:
* closed loop: `--concurrency` keep-alive connections, each sending its next request as soon
  as the last answer arrived: req/s, p50, p99;
* open loop (latest chain only): requests scheduled at `--rate` per second regardless of
  answers; latency counted from the scheduled time, so queueing shows (no coordinated
  omission).
The load generator is a minimal asyncio HTTP/1.1 client in this process; on a 2-core box it
shares the CPU with the server, so the figures are a floor for one gateway process. The
closed-loop rows also give the gateway's CPU time per request (user + system, its worker
processes included): the figure that does not depend on how loaded the machine is.
`--pin` gives the gateway process a core of its own (CPU 0) and puts everything else - the
load generator, Redis, MongoDB, the broker - on the other ones, which is what "per gateway
process" means on a deployment; unpinned, the scheduler mixes them and the figures swing.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from gateways.common.tokens import issue_token
from tests.gateways.dataset import gateway_env, pipeline_dataset
from deltastream.runtime.stack import free_port, start_stack

REPO = Path(__file__).resolve().parents[1]


def start_gateway(data, port: int, log: Path, workers: int = 1) -> subprocess.Popen:
    env = gateway_env(data, port, DELTASTREAM_LOG_LEVEL="WARNING", DELTASTREAM_HTTP_WORKERS=str(workers),
                      DELTASTREAM_RATE_LIMIT_USER="100000000/minute", DELTASTREAM_RATE_LIMIT_IP="100000000/minute")
    proc = subprocess.Popen([sys.executable, "-m", "deltastream", "serve", "api"], cwd=REPO, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError(f"gateway did not start:\n{log.read_text()[-2000:]}")


class Connection:
    """One keep-alive HTTP/1.1 connection sending a fixed GET."""

    def __init__(self, port: int, path: str, token: str) -> None:
        self.port = port
        self.raw = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                    f"Authorization: Bearer {token}\r\n\r\n").encode()

    async def open(self) -> "Connection":
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        return self

    async def get(self) -> int:
        self.writer.write(self.raw)
        head = await self.reader.readuntil(b"\r\n\r\n")
        at = head.lower().find(b"content-length:")
        length = int(head[at + 15:head.find(b"\r\n", at)])
        await self.reader.readexactly(length)
        return int(head[9:12])

    def close(self) -> None:
        self.writer.close()


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[int(q * 10) - 1] if len(values) > 1 else values[0]


async def closed_loop(port: int, path: str, token: str, concurrency: int, seconds: float):
    conns = [await Connection(port, path, token).open() for _ in range(concurrency)]
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def run(conn: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            t0 = time.perf_counter()
            if await conn.get() != 200:
                errors += 1
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(run(c) for c in conns))
    elapsed = time.perf_counter() - started
    for c in conns:
        c.close()
    return len(latencies) / elapsed, latencies, errors


async def open_loop(port: int, path: str, token: str, rate: float, seconds: float, pool: int = 64):
    conns = [await Connection(port, path, token).open() for _ in range(pool)]
    queue: asyncio.Queue = asyncio.Queue()
    latencies: list[float] = []
    errors = 0

    async def run(conn: Connection) -> None:
        nonlocal errors
        while (scheduled := await queue.get()) is not None:
            if await conn.get() != 200:
                errors += 1
            latencies.append(time.perf_counter() - scheduled)

    workers = [asyncio.create_task(run(c)) for c in conns]
    start = time.perf_counter()
    total = int(rate * seconds)
    for k in range(total):
        at = start + k / rate
        delay = at - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        queue.put_nowait(at)
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return total / elapsed, latencies, errors


def cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU time of the gateway and its worker processes so far."""
    root = psutil.Process(proc.pid)
    total = 0.0
    for p in [root, *root.children(recursive=True)]:
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return total


def pin(gateway: subprocess.Popen) -> str:
    """Gateway (and its workers) on CPU 0, this process and every other child on the rest."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return "not pinned (one CPU)"
    me = psutil.Process()
    ours = {gateway.pid, *(c.pid for c in psutil.Process(gateway.pid).children(recursive=True))}
    for p in [me, *me.children(recursive=True)]:
        try:  # every thread (the broker and uvicorn have several); new ones inherit it
            for t in p.threads():
                os.sched_setaffinity(t.id, [cpus[0]] if p.pid in ours else cpus[1:])
        except (psutil.NoSuchProcess, ProcessLookupError):
            pass
    return f"gateway pinned to CPU {cpus[0]}, load generator and servers to {cpus[1:]}"


def row(name: str, rps: float, lat: list[float], errors: int, cpu_us: float | None = None) -> str:
    cpu = f"{cpu_us:>8,.0f}" if cpu_us is not None else f"{'':>8}"
    return (f"{name:<52} {rps:>9,.0f} {percentile(lat, 50) * 1000:>8.2f} {percentile(lat, 99) * 1000:>8.2f}"
            f" {errors:>7} {cpu}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rate", type=float, default=500.0)
    parser.add_argument("--snapshots", type=int, default=30)
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (DELTASTREAM_HTTP_WORKERS)")
    parser.add_argument("--pin", action="store_true", help="give the gateway a CPU of its own")
    args = parser.parse_args()
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    with tempfile.TemporaryDirectory(prefix="bench-rest-") as tmp, start_stack(Path(tmp) / "stack") as stack, \
            pipeline_dataset(stack, Path(tmp) / "data", snapshots=args.snapshots) as data:
        port = free_port()
        proc = start_gateway(data, port, Path(tmp) / "api.log", args.workers)
        placement = pin(proc) if args.pin else "not pinned"
        try:
            token, _ = issue_token(data.settings, "bench@example.com", "access")
            expiry = data.expiries("NIFTY")[0]
            routes = [("latest chain (Redis)", f"/api/data/chain/NIFTY/{expiry}"),
                      ("volatility surface, latest (Redis)", "/api/analytics/volatility_surface/NIFTY"),
                      ("underlying history, 100 ticks (MongoDB)", "/api/data/underlying/NIFTY?limit=100"),
                      ("/health (no token, no store: the floor)", "/health")]
            for _, path in routes:  # warm up: connections, caches, JIT-free but imports and pools
                asyncio.run(closed_loop(port, path, token, 4, 0.5))
            print(f"one gateway ({args.workers} uvicorn worker process(es), JWT + Redis rate limiter on every "
                  f"request); {os.cpu_count()} CPUs, {placement}; load average {os.getloadavg()[0]:.1f}")
            print(f"{'route':<52} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'CPU us/req':>8}")
            for name, path in routes:
                cpu0 = cpu_seconds(proc)
                rps, lat, errors = asyncio.run(closed_loop(port, path, token, args.concurrency, args.seconds))
                cpu_us = (cpu_seconds(proc) - cpu0) / len(lat) * 1e6
                print(row(f"{name}, {args.concurrency} conns", rps, lat, errors, cpu_us), flush=True)
            for name, path in routes[:2]:
                rps, lat, errors = asyncio.run(open_loop(port, path, token, args.rate, args.seconds))
                print(row(f"{name}, open loop {args.rate:.0f}/s", rps, lat, errors), flush=True)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(15)


if __name__ == "__main__":
    main()
