"""`deltastream up`: comes up, reports where, stops with nothing left behind; bad config fails fast."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from deltastream.runtime.probes import port_in_use
from deltastream.runtime.status import collect_status
from deltastream.settings import Settings
from tests.stack import free_port

PORT_VARS = ["KAFKA", "MONGO", "REDIS", "API", "AUTH", "SOCKET", "STORAGE", "ANALYTICS", "LOGS", "AI"]


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DELTASTREAM_")}
    env["DELTASTREAM_DATA_DIR"] = str(tmp_path / "data")
    for name in PORT_VARS:
        env[f"DELTASTREAM_{name}_PORT"] = str(free_port())
    return env


def settings_from(env: dict[str, str]) -> Settings:
    return Settings(_env_file=None, **{k.removeprefix("DELTASTREAM_").lower(): v
                                       for k, v in env.items() if k.startswith("DELTASTREAM_")})


def run_cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "deltastream", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


def stop_tree(proc: subprocess.Popen, children: list[psutil.Process]) -> None:
    """Teardown for a failed test: honcho's children run in their own sessions, so a
    SIGKILL of `up` alone would orphan them."""
    if proc.poll() is None:
        children.extend(psutil.Process(proc.pid).children(recursive=True))
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    for child in children:
        if child.is_running():
            child.kill()


def wait_all_up(settings: Settings, services: tuple[str, ...], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        results = collect_status(settings, 1.0, services=services)
        if all(r.ok for r in results):
            return
        time.sleep(0.5)
    pytest.fail("not all up: " + "; ".join(f"{r.component}: {r.detail}" for r in results if not r.ok))


@pytest.mark.parametrize("stop_signal,args,services", [
    (signal.SIGINT, ["up"], ("api",)),
    (signal.SIGTERM, ["up", "--servers-only"], ()),
], ids=["full-ctrl-c", "servers-sigterm"])
def test_up_starts_everything_and_stops_clean(tmp_path, stop_signal, args, services):
    env = clean_env(tmp_path)
    settings = settings_from(env)
    log = open(tmp_path / "up.log", "w+")
    up = subprocess.Popen([sys.executable, "-m", "deltastream", *args], env=env, cwd=tmp_path,
                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    children: list[psutil.Process] = []
    try:
        wait_all_up(settings, services)
        # the "what runs where" table is printed once the servers answer
        deadline = time.monotonic() + 30
        while "DeltaStream is up" not in Path(log.name).read_text() and time.monotonic() < deadline:
            time.sleep(0.2)
        output = Path(log.name).read_text()
        assert "DeltaStream is up" in output and settings.kafka_servers in output
        children = psutil.Process(up.pid).children(recursive=True)
        assert len(children) >= 3
        up.send_signal(stop_signal)
        up.wait(timeout=30)
        # measured before any teardown, which would clean up after a failure
        leftovers = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        bound = [p for p in settings.ports().values() if port_in_use(settings.host, p)]
    finally:
        stop_tree(up, children)
    assert leftovers == [], f"orphans: {leftovers}"
    assert bound == [], f"ports still bound: {bound}\n{Path(log.name).read_text()[-2000:]}"


def test_taken_port_is_named_with_its_env_var(tmp_path):
    env = clean_env(tmp_path)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(env["DELTASTREAM_REDIS_PORT"])))
        holder.listen()
        result = run_cli(["up"], env, tmp_path)
    assert result.returncode == 2
    assert f"port {env['DELTASTREAM_REDIS_PORT']}" in result.stderr
    assert "DELTASTREAM_REDIS_PORT" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_unreachable_broker_fails_fast_with_one_line(tmp_path):
    env = clean_env(tmp_path) | {"DELTASTREAM_KAFKA_BOOTSTRAP": f"127.0.0.1:{free_port()}"}
    result = run_cli(["up"], env, tmp_path)
    assert result.returncode == 2
    assert "cannot reach kafka" in result.stderr and "DELTASTREAM_KAFKA_BOOTSTRAP" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("var,value", [
    ("DELTASTREAM_MONGO_URL", "http://localhost:27017"),
    ("DELTASTREAM_KAFKA_BOOTSTRAP", "localhost"),
    ("DELTASTREAM_REDIS_URL", "localhost:6379"),
    ("DELTASTREAM_API_PORT", "70000"),
])
def test_malformed_settings_give_one_line_reason(tmp_path, var, value):
    result = run_cli(["up"], clean_env(tmp_path) | {var: value}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("deltastream: configuration error") and var in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_status_reports_each_component(stack, tmp_path):
    result = run_cli(["status", "--timeout", "1"], stack.env | {"DELTASTREAM_API_PORT": str(free_port()),
                                                                "DELTASTREAM_SOCKET_PORT": str(free_port())}, tmp_path)
    lines = {line.split()[0]: line.split()[1] for line in result.stdout.splitlines()}
    assert lines == {"kafka": "up", "mongodb": "up", "redis": "up", "api": "DOWN", "socket": "DOWN"}
    assert result.returncode == 1
