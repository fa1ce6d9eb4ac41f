"""Fixtures of the dashboard tests: a headless Chromium (Debian's package, driven by
Playwright), and the whole pipeline started the way the README starts it (`deltastream up`)
against the session's embedded servers, on fresh ports, topics, database and Redis."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import httpx
import psutil
import pytest

from tests.servers import PrivateRedis
from tests.stack import Stack, free_port

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "artifacts" / "dashboard"  # git-ignored; CI keeps what the run left there
CHROMIUM_CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
# No sandbox (root in a container), no GPU, and nothing that phones home.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
PRODUCTS = ["NIFTY", "SPY"]
STRIKES_PER_SIDE = 5


def _find_chromium() -> str | None:
    return next((p for p in CHROMIUM_CANDIDATES if os.access(p, os.X_OK)), None)


def _install_chromium() -> str:
    """Debian's chromium via apt-get (root only); '' on success, else why it failed."""
    if shutil.which("apt-get") is None:
        return "no apt-get on this machine"
    if os.geteuid() != 0:
        return "not root, cannot apt-get install chromium (install it: sudo apt-get install chromium)"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "chromium"]):
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            return f"{' '.join(cmd)} timed out"
        if done.returncode != 0:
            return f"{' '.join(cmd)} failed: {done.stderr.strip()[-300:]}"
    return ""


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = _find_chromium()
    if path is None:
        why = _install_chromium()
        path = _find_chromium()
        if path is None:
            pytest.skip("no headless browser: /usr/bin/chromium is missing and could not be "
                        f"installed ({why})")
    return path


@pytest.fixture(scope="module")  # closed with the module: its event loop must not outlive it
def browser(chromium_path: str):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS, headless=True)
        try:
            yield b
        finally:
            b.close()


@contextlib.contextmanager
def private_redis(base: Path) -> Iterator[str]:
    """A redis-server of our own: the shared one's keys are not namespaced by topic prefix, so
    `latest:*`, `products` and the rooms' seq would mix with other tests'."""
    redis = PrivateRedis(base).start()
    try:
        yield redis.url
    finally:
        redis.stop()


@dataclass
class LiveStack:
    api_url: str
    socket_port: int
    log: Path
    env: dict[str, str]

    def log_tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM `up` (honcho forwards it to every child), then kill whatever is left."""
    children = psutil.Process(proc.pid).children(recursive=True) if proc.poll() is None else []
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    for child in children:
        if child.is_running():
            child.kill()


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"`deltastream up` exited:\n{log.read_text(errors='replace')[-4000:]}"
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    tail = log.read_text(errors="replace")[-4000:]
    raise AssertionError(f"{url} not healthy after {timeout:.0f}s:\n{tail}")


@pytest.fixture(scope="module")
def live_stack(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    """`deltastream up` (feed, processor, both sinks, API gateway, socket gateway) in real time,
    on the session's Kafka and MongoDB, a Redis of its own, fresh topics/db/group/ports."""
    base = tmp_path_factory.mktemp("dashboard")
    with private_redis(base / "redis") as redis_url:
        yield from _up(stack, base, redis_url)


def _up(stack: Stack, base: Path, redis_url: str) -> Iterator[LiveStack]:
    unique = uuid.uuid4().hex[:10]
    api_port, socket_port = free_port(), free_port()
    servers = ("DELTASTREAM_KAFKA_BOOTSTRAP", "DELTASTREAM_MONGO_URL", "DELTASTREAM_BROKER_PROFILE")
    env = {k: v for k, v in stack.env.items() if not k.startswith("DELTASTREAM_") or k in servers}
    env |= {
        "DELTASTREAM_REDIS_URL": redis_url,
        "DELTASTREAM_DATA_DIR": str(base / "data"),
        "DELTASTREAM_API_PORT": str(api_port), "DELTASTREAM_SOCKET_PORT": str(socket_port),
        **{f"DELTASTREAM_{name}_PORT": str(free_port())
           for name in ("AUTH", "STORAGE", "ANALYTICS", "LOGS", "AI")},
        "DELTASTREAM_TOPIC_PREFIX": f"dash{unique}.", "DELTASTREAM_MONGO_DB": f"dash_{unique}",
        "DELTASTREAM_PROCESSOR_APP_ID": f"dash-proc-{unique}",
        "DELTASTREAM_PRODUCTS": json.dumps(PRODUCTS),
        "DELTASTREAM_FEED_STRIKES_PER_SIDE": str(STRIKES_PER_SIDE),
        "DELTASTREAM_FEED_EXPIRIES": "2", "DELTASTREAM_FEED_PUBLISH_QUOTES": "false",
        "DELTASTREAM_JWT_SECRET": f"dashboard-tests-{unique}-0123456789abcdef",
        "DELTASTREAM_RATE_LIMIT_USER": "100000/minute", "DELTASTREAM_RATE_LIMIT_IP": "100000/minute",
        "PYTHONUNBUFFERED": "1",
    }
    log = base / "up.log"
    with log.open("wb") as out:
        # cwd: a directory without the repo's .env; the command `make up` runs.
        proc = subprocess.Popen([sys.executable, "-m", "deltastream", "up"], cwd=base, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{api_port}/health", proc, log, 120)
        wait_healthy(f"http://127.0.0.1:{socket_port}/health", proc, log, 120)
        yield LiveStack(f"http://127.0.0.1:{api_port}", socket_port, log, env)
    finally:
        _stop(proc)
