"""Servers of a test's own (the runtime's specs, on free ports), to stop, kill and restart
without disturbing the session's shared stack."""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from deltastream.runtime.probes import wait_ready
from deltastream.runtime.servers import mongo_spec, prepare_data_dir, redis_spec
from deltastream.runtime.stack import free_port
from deltastream.settings import Settings


class PrivateMongo:
    """An nx-27017 of the sink tests' own, with one SQLite file per database.

    The runtime's server is started with `--db FILE`, where nx-27017 serves every database
    name from that one file (`mongo_db` isolates nothing); `--data-dir` gives each database
    its own file, so every test can write the real collection names into a database of its
    own. The outage test stops and restarts one (same files)."""

    def __init__(self, base: Path) -> None:
        self.settings = Settings(_env_file=None, data_dir=base, mongo_port=free_port())
        prepare_data_dir(self.settings)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.settings.mongo_uri

    def start(self) -> None:
        argv = mongo_spec(self.settings).argv
        at = argv.index("--db")
        argv[at:at + 2] = ["--data-dir", str(self.settings.data_dir.resolve() / "mongo")]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_ready(self.settings, ("mongodb",), timeout=30)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class PrivateRedis:
    """A redis-server of one's own. Redis keys are not namespaced by topic prefix, so tests
    whose `latest:*`, `products` or room sequences must not mix with others' use one of these
    (append-only file on, like the embedded one: a restart keeps the data)."""

    def __init__(self, base: Path) -> None:
        self.settings = Settings(_env_file=None, data_dir=base, redis_port=free_port())
        prepare_data_dir(self.settings)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return self.settings.redis_uri

    def start(self) -> "PrivateRedis":
        self.proc = subprocess.Popen(redis_spec(self.settings).argv, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        wait_ready(self.settings, ("redis",), timeout=30)
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(30)

    def kill(self) -> None:
        self.stop(signal.SIGKILL)
