"""Rate limits hold across gateway processes: two `deltastream serve api` deployments sharing
one Redis (the second with two uvicorn workers, DELTASTREAM_HTTP_WORKERS) spend one budget
per user and one per client IP."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from gateways.common.tokens import issue_token
from tests.gateways.dataset import gateway_env
from tests.stack import free_port

pytestmark = pytest.mark.integration
REPO = Path(__file__).resolve().parents[2]
PER_USER, PER_IP = 6, 10


def start_gateway(dataset, port: int, log: Path, workers: int = 1) -> subprocess.Popen:
    env = gateway_env(dataset, port, DELTASTREAM_RATE_LIMIT_USER=f"{PER_USER}/minute",
                      DELTASTREAM_RATE_LIMIT_IP=f"{PER_IP}/minute", DELTASTREAM_HTTP_WORKERS=str(workers))
    return subprocess.Popen([sys.executable, "-m", "deltastream", "serve", "api"], cwd=REPO, env=env,
                            stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)


def wait_healthy(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"gateway exited {proc.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"gateway at {url} not healthy:\n{log.read_text()[-2000:]}")


def test_budget_is_shared_by_two_gateway_processes(dataset, tmp_path):
    ports = [free_port(), free_port()]
    logs = [tmp_path / f"api{i}.log" for i in range(2)]
    procs = [start_gateway(dataset, port, log, workers) for port, log, workers in zip(ports, logs, (1, 2))]
    try:
        urls = [f"http://127.0.0.1:{p}" for p in ports]
        for url, proc, log in zip(urls, procs, logs):
            wait_healthy(url, proc, log)

        def get(n: int, token: str) -> httpx.Response:  # alternate between the two processes
            return httpx.get(f"{urls[n % 2]}/api/data/products", headers={"Authorization": f"Bearer {token}"},
                             timeout=10)

        alice, _ = issue_token(dataset.settings, f"alice-{uuid.uuid4().hex[:6]}", "access")
        assert [get(n, alice).status_code for n in range(PER_USER)] == [200] * PER_USER
        for n in (PER_USER, PER_USER + 1):  # spent, on both processes
            over = get(n, alice)
            assert over.status_code == 429, over.text
            assert "rate limit exceeded for this user" in over.json()["detail"]
            assert 1 <= int(over.headers["Retry-After"]) <= 60

        # every request from the IP spent its budget (PER_IP), refused ones too; bob gets the rest
        bob, _ = issue_token(dataset.settings, f"bob-{uuid.uuid4().hex[:6]}", "access")
        left = PER_IP - PER_USER - 2
        assert [get(n, bob).status_code for n in range(left)] == [200] * left
        over = get(left, bob)
        assert over.status_code == 429 and "client IP" in over.json()["detail"]
        assert int(over.headers["Retry-After"]) >= 1
        # health and docs are not rate limited
        assert httpx.get(f"{urls[0]}/health").status_code == 200
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
