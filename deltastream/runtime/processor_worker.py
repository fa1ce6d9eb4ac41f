"""A processor worker (`stream_processors.run`) as a subprocess against a `Stack`, with its log
file: for tests and benchmarks, next to the servers of `deltastream.runtime.stack`."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from deltastream.settings import Settings


def worker_env(stack, settings: Settings) -> dict[str, str]:
    return stack.env | {
        "DELTASTREAM_TOPIC_PREFIX": settings.topic_prefix,
        "DELTASTREAM_PROCESSOR_APP_ID": settings.processor_app_id,
        "DELTASTREAM_DATA_DIR": str(settings.data_dir),
        "DELTASTREAM_PROCESSOR_GRACE_SECONDS": str(settings.processor_grace_seconds),
        "DELTASTREAM_PROCESSOR_BAR_UPDATE_SECONDS": str(settings.processor_bar_update_seconds),
        "DELTASTREAM_LOG_LEVEL": "INFO",
    }


class Worker:
    """A `stream_processors.run` subprocess with its log file."""

    def __init__(self, stack, settings: Settings, log: Path) -> None:
        self.log = log
        self.proc = subprocess.Popen([sys.executable, "-m", "stream_processors.run"],
                                     env=worker_env(stack, settings), stdout=open(log, "ab"),
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for(self, needle: str, timeout: float = 60, count: int = 1) -> None:
        deadline = time.monotonic() + timeout
        while self.text().count(needle) < count:
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode}:\n{self.text()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {needle!r} in worker log after {timeout}s:\n{self.text()[-3000:]}")
            time.sleep(0.2)

    def events(self) -> str:
        """The log lines about rebalances, gaps and failures (for failure messages)."""
        keep = ("partitions", "revoked", "rebalanc", "never reached", "ERROR", "WARNING", "CRITICAL")
        return "\n".join(line for line in self.text().splitlines() if any(k in line for k in keep))

    def kill(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode
