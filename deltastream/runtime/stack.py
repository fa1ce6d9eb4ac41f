"""The embedded servers on free loopback ports, for tests and benchmarks (reusing the runtime's
server specs); with DELTASTREAM_KAFKA_BOOTSTRAP / _MONGO_URL / _REDIS_URL set, those servers instead."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from deltastream.runtime.graceful import die_with_parent
from deltastream.runtime.probes import wait_ready
from deltastream.runtime.servers import embedded_specs, prepare_data_dir
from deltastream.settings import Settings

EXTERNAL_ENV = ("DELTASTREAM_KAFKA_BOOTSTRAP", "DELTASTREAM_MONGO_URL", "DELTASTREAM_REDIS_URL")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Stack:
    settings: Settings
    data_dir: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        """Environment for a child process that should use these servers."""
        s = self.settings
        return {**os.environ, "DELTASTREAM_KAFKA_BOOTSTRAP": s.kafka_servers,
                "DELTASTREAM_MONGO_URL": s.mongo_uri, "DELTASTREAM_REDIS_URL": s.redis_uri,
                # still the embedded broker: keep its client workarounds
                "DELTASTREAM_BROKER_PROFILE": s.profile.value}

    def with_settings(self, **changes) -> Settings:
        return self.settings.model_copy(update=changes)


def terminate(proc: subprocess.Popen, timeout: float = 10) -> None:
    """SIGTERM the process group, SIGKILL it if still there after `timeout` seconds."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@contextlib.contextmanager
def start_stack(data_dir: Path) -> Iterator[Stack]:
    given = {k: os.environ.get(k) for k in EXTERNAL_ENV}
    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        kafka_bootstrap=given["DELTASTREAM_KAFKA_BOOTSTRAP"],
        mongo_url=given["DELTASTREAM_MONGO_URL"],
        redis_url=given["DELTASTREAM_REDIS_URL"],
        kafka_port=free_port(), mongo_port=free_port(), redis_port=free_port(),
        broker_profile=os.environ.get("DELTASTREAM_BROKER_PROFILE", "auto"),
    )
    prepare_data_dir(settings)
    stack = Stack(settings=settings.model_copy(update={
        # Pin the profile: the stack's URLs become "external" for child processes.
        "broker_profile": settings.profile}), data_dir=data_dir)
    try:
        for spec in embedded_specs(settings):
            log = open(data_dir / "logs" / f"{spec.name}.out", "wb")
            # Killed with us: a test run or bench stopped by SIGTERM/SIGKILL skips the
            # `finally` below, and an orphaned Tansu was seen burning 30% of a core for an hour.
            stack.processes[spec.name] = subprocess.Popen(
                spec.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent)
        wait_ready(settings, timeout=60)
        yield stack
    finally:
        for proc in stack.processes.values():
            terminate(proc)
