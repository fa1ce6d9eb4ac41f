"""WebSocket gateway fan-out: deliveries/s and publish → receive latency for N clients × M rooms.

    python -m bench.bench_socket [--clients 1000] [--rooms 8] [--rates 20,50,100,200] [--seconds 5]

One gateway process (`python -m gateways.socket`, as deployed) against the embedded Redis;
envelopes are published by the Redis sink's own code (`RedisSink.write`: the Lua script that
INCRs seq, PUBLISHes and appends to history), `underlying_update` for M products, so each message
goes to `general` (every client) and to one `product:{P}` room (N/M clients). Clients run in
two other processes as minimal WebSocket readers (frame parsing only, so that the clients, not
the gateway, are not what is measured); each data frame's latency is receive time minus the
`sent` time stamped into the record just before the sink's write. All processes share this
machine's cores (the publisher and Redis too), so the ceiling printed is a lower bound of what
one gateway process does on a core of its own.
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing as mp
import os
import re
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from gateways.common.tokens import issue_token
from tests.socket.publish import SinkPublisher
from tests.stack import free_port, start_stack

REPO = Path(__file__).resolve().parents[1]
SECRET = "bench-socket-secret-0123456789abcdef"
_SENT = re.compile(rb'"sent":([0-9.]+),"step":(\d+)')


# -- a minimal WebSocket client (RFC 6455), enough to read server frames fast -------------------
def _masked(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    n = len(payload)
    head = bytes((0x80 | opcode, 0x80 | n)) if n < 126 else struct.pack("!BBH", 0x80 | opcode, 0xFE, n)
    return head + mask + body


class Reader(asyncio.Protocol):
    def __init__(self, sink: dict, subscribe: bytes, ready: asyncio.Future) -> None:
        self.buf = bytearray()
        self.sink, self.subscribe, self.ready = sink, subscribe, ready
        self.upgraded = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport

    def connection_lost(self, exc) -> None:
        if not self.ready.done():
            print("lost before subscribed:", exc, bytes(self.buf[:200]), file=sys.stderr)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            assert self.buf.startswith(b"HTTP/1.1 101"), bytes(self.buf[:80])
            del self.buf[:end + 4]
            self.upgraded = True
            self.transport.write(_masked(0x1, self.subscribe))
        now = time.time()
        buf, pos, size = self.buf, 0, len(self.buf)
        while size - pos >= 2:
            opcode, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            head = 2
            if n == 126:
                if size - pos < 4:
                    break
                n, head = struct.unpack_from("!H", buf, pos + 2)[0], 4
            elif n == 127:
                if size - pos < 10:
                    break
                n, head = struct.unpack_from("!Q", buf, pos + 2)[0], 10
            if size - pos < head + n:
                break
            payload = bytes(buf[pos + head:pos + head + n])
            pos += head + n
            if opcode == 0x9:  # ping → pong
                self.transport.write(_masked(0xA, payload))
            elif opcode == 0x1:
                m = _SENT.search(payload)
                if m is not None:
                    self.sink.setdefault(int(m.group(2)), []).append(now - float(m.group(1)))
                elif b'"subscribed"' in payload and not self.ready.done():
                    self.ready.set_result(None)
        del buf[:pos]


async def _clients(port: int, token: str, ids: range, rooms: int, products: list[str], ready, done, out) -> None:
    loop = asyncio.get_running_loop()
    sink: dict[int, list[float]] = {}
    waits = []
    for i in ids:
        fut = loop.create_future()
        sub = json.dumps({"action": "subscribe", "type": "product", "symbol": products[i % rooms]}).encode()
        key = base64.b64encode(os.urandom(16)).decode()
        transport, _ = await loop.create_connection(lambda: Reader(sink, sub, fut), "127.0.0.1", port)
        transport.write((f"GET /ws?token={token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                         f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
                        .encode())
        waits.append(fut)
    try:
        await asyncio.wait_for(asyncio.gather(*waits), 120)
    except asyncio.TimeoutError:
        ok = sum(f.done() and not f.cancelled() for f in waits)
        raise SystemExit(f"only {ok} of {len(waits)} clients subscribed") from None
    ready.set()
    while not done.is_set():
        await asyncio.sleep(0.1)
    out.put({k: v for k, v in sink.items()})


def client_process(port, token, ids, rooms, products, ready, done, out) -> None:
    asyncio.run(_clients(port, token, ids, rooms, products, ready, done, out))


# -- the run --------------------------------------------------------------------------------------
def _cpu(proc: psutil.Process) -> float:
    """CPU seconds (user + system) the process has used so far."""
    t = proc.cpu_times()
    return t.user + t.system


def _counts(port: int) -> tuple[int, int]:
    """Data frames the gateway has handed to its clients so far, and the batches they went in."""
    # A saturated gateway answers once its backlog is out: wait for it.
    stats = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=120).json()
    return stats["delivered"], stats.get("flushes", 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rooms", type=int, default=8)
    parser.add_argument("--rates", default="20,50,100,200", help="published messages/s per step")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--client-procs", type=int, default=2)
    args = parser.parse_args(argv)
    products = [f"B{i}" for i in range(args.rooms)]
    rates = [float(r) for r in args.rates.split(",")]

    with tempfile.TemporaryDirectory() as tmp, start_stack(Path(tmp)) as stack:
        settings = stack.with_settings(jwt_secret=SECRET, products=products, data_dir=Path(tmp))
        port = free_port()
        env = {**stack.env, "DELTASTREAM_SOCKET_PORT": str(port), "DELTASTREAM_JWT_SECRET": SECRET,
               "DELTASTREAM_PRODUCTS": json.dumps(products), "DELTASTREAM_DATA_DIR": tmp,
               "DELTASTREAM_LOG_LEVEL": "WARNING"}
        gateway = subprocess.Popen([sys.executable, "-m", "gateways.socket"], cwd=REPO, env=env,
                                   stdout=open(Path(tempfile.gettempdir()) / "bench_socket_gateway.log", "wb"), stderr=subprocess.STDOUT)
        try:
            return _run(args, settings, port, gateway, products, rates)
        finally:
            if gateway.poll() is None:
                gateway.send_signal(signal.SIGTERM)
                gateway.wait(30)


def _run(args, settings, port: int, gateway: subprocess.Popen, products: list[str], rates: list[float]) -> int:
    for _ in range(300):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.1)
    token = issue_token(settings, "bench", "access")[0]
    ctx = mp.get_context("spawn")
    done, out = ctx.Event(), ctx.Queue()
    procs, readies = [], []
    per = -(-args.clients // args.client_procs)
    for k in range(args.client_procs):
        ids = range(k * per, min(args.clients, (k + 1) * per))
        ready = ctx.Event()
        proc = ctx.Process(target=client_process, args=(port, token, ids, args.rooms, products, ready, done, out))
        proc.start()
        procs.append(proc)
        readies.append(ready)
    for ready in readies:
        assert ready.wait(180), "clients did not connect"
    gw_proc = psutil.Process(gateway.pid)
    client_procs = [psutil.Process(proc.pid) for proc in procs]
    publisher = SinkPublisher(settings, "bench-socket")
    steps = []
    try:
        for step, rate in enumerate(rates):
            d0, f0 = _counts(port)
            gw0, cl0, wall0 = _cpu(gw_proc), sum(map(_cpu, client_procs)), time.perf_counter()
            sent, start, tick = 0, time.perf_counter(), 0.01
            while (elapsed := time.perf_counter() - start) < args.seconds:
                due = int(rate * elapsed) - sent
                if due > 0:
                    publisher.write([publisher.record("underlying_update", products[(sent + j) % args.rooms],
                                                      sent=time.time(), step=step) for j in range(due)])
                    sent += due
                time.sleep(tick)
            seconds = time.perf_counter() - start
            time.sleep(1.0)  # let the tail arrive
            d1, f1 = _counts(port)  # first: a backlog's CPU belongs to the step that made it
            wall = time.perf_counter() - wall0
            gw_cpu, clients_cpu = _cpu(gw_proc) - gw0, sum(map(_cpu, client_procs)) - cl0
            # CPU per delivery the gateway made (written or queued), whether or not it arrived in time
            steps.append((rate, sent, seconds, gw_cpu / wall, gw_cpu / max(1, d1 - d0), clients_cpu / wall,
                          (d1 - d0) / max(1, f1 - f0)))
    finally:
        publisher.close()
        done.set()
        results: dict[int, list[float]] = {}
        for _ in procs:
            for k, v in out.get(timeout=120).items():
                results.setdefault(k, []).extend(v)
        for proc in procs:
            proc.join(30)
        stats = httpx.get(f"http://127.0.0.1:{port}/stats").json()

    per_msg = args.clients + args.clients / args.rooms  # general + one product room
    print(f"\nsocket gateway fan-out: {args.clients} clients, {args.rooms} product rooms (+ general), "
          f"1 gateway process, {os.cpu_count()} cores shared with Redis, publisher and clients")
    print(f"{'published/s':>12} {'deliveries/s':>13} {'received':>10} {'expected':>10} "
          f"{'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'gw CPU%':>8} {'gw us/dlv':>9} {'dlv/flush':>9} {'clients CPU%':>12}")
    ceiling, cost = 0.0, []
    for step, (rate, sent, seconds, gw_load, gw_cost, clients_load, per_flush) in enumerate(steps):
        lat = sorted(results.get(step, []))
        expected = int(sent * per_msg)
        if not lat:
            print(f"{rate:>12,.0f} {'-':>13} {0:>10} {expected:>10}")
            continue
        pct = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] * 1000  # noqa: E731
        rate_out = len(lat) / seconds
        print(f"{sent / seconds:>12,.0f} {rate_out:>13,.0f} {len(lat):>10,} {expected:>10,} "
              f"{pct(0.5):>8.1f} {pct(0.99):>8.1f} {lat[-1] * 1000:>8.1f} {100 * gw_load:>8.0f} "
              f"{gw_cost * 1e6:>9.1f} {per_flush:>9,.0f} {100 * clients_load:>12.0f}")
        cost.append(gw_cost * 1e6)
        if len(lat) == expected and pct(0.99) <= 50:
            ceiling = max(ceiling, rate_out)
    print(f"gateway: skipped={stats['skipped']} slow_disconnects={stats['slow_disconnects']} "
          f"connections={stats['connections']}")
    print(f"measured ceiling (every message delivered, p99 <= 50 ms): {ceiling:,.0f} deliveries/s; "
          f"target: >= 50,000 deliveries/s with 1,000 clients")
    if cost:  # when the clients (sharing the cores) are the bottleneck, the gateway's own cost tells more
        print(f"gateway CPU per delivery: {min(cost):.1f}-{max(cost):.1f} us, i.e. about "
              f"{1e6 / max(cost):,.0f} deliveries/s on a core of its own")
    return 0


if __name__ == "__main__":
    sys.exit(main())
