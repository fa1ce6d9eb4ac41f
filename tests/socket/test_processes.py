"""Gateway processes as deployed: two of them on two ports each deliver every message; SIGTERM
closes clients with 1001. And the real path: feed → Kafka → Redis sink → gateway → client."""
from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import orjson
import pytest
from websockets.exceptions import ConnectionClosed

from deltastream.clients import redis_client
from schemas.topics import MARKET_OPTION_CHAINS
from sinks.run import run_redis_sink
from tests.sinks.conftest import SinkThread, feed, read_topics
from tests.socket.conftest import SECRET, open_client, recv, recv_until, running_gateway, subscribe
from tests.stack import free_port

REPO = Path(__file__).resolve().parents[2]


async def start_gateway(stack, settings, tmp_path: Path, argv: list[str]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = {**stack.env, "DELTASTREAM_SOCKET_PORT": str(port), "DELTASTREAM_JWT_SECRET": SECRET,
           "DELTASTREAM_PRODUCTS": json.dumps(settings.products), "DELTASTREAM_DATA_DIR": str(tmp_path),
           "DELTASTREAM_LOG_SHIP_LEVEL": "", "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / f"socket-{port}.log").open("wb")
    proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    async with httpx.AsyncClient() as http:
        async with asyncio.timeout(60):
            while True:
                assert proc.poll() is None, (tmp_path / f"socket-{port}.log").read_text()
                try:
                    r = await http.get(f"http://127.0.0.1:{port}/health")
                    if r.status_code == 200:
                        assert r.json() == {"status": "healthy", "service": "socket"}
                        return proc, port
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)


async def test_two_gateway_processes_both_deliver_every_message_and_sigterm_closes_1001(
        stack, settings, publisher, products, tmp_path):
    p = products[0]
    procs = [await start_gateway(stack, settings, tmp_path, ["-m", "deltastream", "serve", "socket"]),
             await start_gateway(stack, settings, tmp_path, ["-m", "gateways.socket"])]
    try:
        clients = []
        for _, port in procs:
            for _ in range(2):
                ws = await open_client(settings, port)
                assert (await subscribe(ws, "product", p))["event"] == "subscribed"
                clients.append(ws)
        sent = [publisher.publish("underlying_update", p) for _ in range(50)]
        for ws in clients:
            got = await recv_until(ws, lambda m: m.get("room") == f"product:{p}" and m["seq"] == 50)
            mine = [m for m in got if m.get("room") == f"product:{p}"]
            assert [m["data"] for m in mine] == sent
            assert [m["seq"] for m in mine] == list(range(1, 51))
        # Graceful shutdown: every client of the process is closed with 1001 (going away).
        proc, _ = procs[0]
        proc.send_signal(signal.SIGTERM)
        for ws in clients[:2]:
            with pytest.raises(ConnectionClosed):
                while True:
                    await recv(ws)
            assert ws.close_code == 1001
        assert proc.wait(30) == 0
        # The other process is unaffected.
        more = publisher.publish("underlying_update", p)
        for ws in clients[2:]:
            got = await recv_until(ws, lambda m: m.get("room") == f"product:{p}")
            assert got[-1]["data"] == more
            await ws.close()
    finally:
        for proc, _ in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()


async def test_real_pipeline_feed_kafka_redis_sink_gateway_client(stack, unique):
    """Option chains from the feed reach a `chain:NIFTY` subscriber through Kafka and the sink."""
    settings = stack.with_settings(
        topic_prefix=f"ws{unique}.", redis_url=f"{stack.settings.redis_uri.rsplit('/', 1)[0]}/15",
        products=["NIFTY", "SPY"], feed_strikes_per_side=2, feed_expiries=2, feed_seed=11,
        feed_publish_quotes=False, sink_batch_size=50, sink_max_latency_ms=50, jwt_secret=SECRET)
    r = redis_client(settings)
    r.flushdb()
    r.close()
    async with running_gateway(settings) as gateway:
        ws = await open_client(settings, gateway.port)
        assert (await subscribe(ws, "chain", "NIFTY"))["event"] == "subscribed"
        sink = SinkThread(run_redis_sink, settings, f"ws-redis-{unique}")
        try:
            snapshots = 4
            stats = await asyncio.to_thread(feed, settings, snapshots)
            expected = snapshots * settings.feed_expiries  # NIFTY chains
            got = await recv_until(ws, lambda m: m.get("room") == "chain:NIFTY" and m["seq"] == expected,
                                   timeout=90)
        finally:
            assert await asyncio.to_thread(sink.stop) == 0
        chains = [m for m in got if m.get("room") == "chain:NIFTY"]
        assert [m["seq"] for m in chains] == list(range(1, expected + 1))
        assert all(m["event"] == "chain_update" and m["data"]["product"] == "NIFTY" for m in chains)
        # Exactly the chains the feed put on Kafka, as the feed encoded them.
        produced = await asyncio.to_thread(read_topics, settings, [MARKET_OPTION_CHAINS],
                                           snapshots * 2 * settings.feed_expiries)
        nifty = sorted((orjson.loads(m.value()) for m in produced), key=lambda d: d["event_id"])
        nifty = [d for d in nifty if d["product"] == "NIFTY"]
        assert sorted((m["data"] for m in chains), key=lambda d: d["event_id"]) == nifty
        assert stats.produced > 0
        await ws.close()
