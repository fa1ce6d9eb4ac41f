"""The pipeline's processes started one by one, to kill and restart them individually.

`deltastream up` runs everything under honcho, which stops the whole set when one child
dies: right for a user, wrong for a chaos test or a benchmark that must SIGKILL one process
and bring it back. This runs the same commands (`pipeline.pipeline_processes`) as separate
process groups with their output in one log file each.
"""
from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import psutil

from deltastream.runtime.pipeline import ProcessSpec, pipeline_processes
from deltastream.settings import Settings


class Fleet:
    def __init__(self, settings: Settings, env: dict[str, str], log_dir: Path,
                 only: tuple[str, ...] | None = None) -> None:
        self.env, self.log_dir = env, log_dir
        self.specs: dict[str, ProcessSpec] = {
            s.name: s for s in pipeline_processes(settings) if only is None or s.name in only}
        self.procs: dict[str, subprocess.Popen] = {}
        log_dir.mkdir(parents=True, exist_ok=True)

    def start(self, name: str) -> subprocess.Popen:
        spec = self.specs[name]
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(["bash", "-c", spec.command], env=self.env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = proc
        return proc

    def start_all(self) -> None:
        for name in self.specs:
            self.start(name)

    def alive(self, name: str) -> bool:
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def send(self, name: str, sig: int = signal.SIGKILL, timeout: float = 30.0) -> int | None:
        """Send `sig` to the process group and wait for the process; its exit code."""
        proc = self.procs[name]
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        return proc.returncode

    def restart(self, name: str, sig: int = signal.SIGKILL) -> None:
        self.send(name, sig)
        self.start(name)

    def stop_all(self, timeout: float = 30.0) -> dict[str, int | None]:
        # Reverse order: gateways and sinks first, the feed last (nothing new arrives meanwhile
        # at consumers that are already gone). One at a time: Tansu wedges a group whose last
        # members leave together during a rebalance (DESIGN.md).
        return {name: self.send(name, signal.SIGTERM, timeout) for name in reversed(list(self.procs))}

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def usage(self) -> dict[str, tuple[float, float]]:
        """(CPU seconds, RSS MiB) per running process, children included."""
        return process_usage(self.procs)


def process_usage(procs: dict[str, subprocess.Popen]) -> dict[str, tuple[float, float]]:
    """(CPU seconds, RSS MiB) of each named process and its children."""
    out = {}
    for name, proc in procs.items():
        try:
            root = psutil.Process(proc.pid)
            members = [root, *root.children(recursive=True)]
            cpu = sum(p.cpu_times().user + p.cpu_times().system for p in members)
            rss = sum(p.memory_info().rss for p in members) / 2**20
            out[name] = (cpu, rss)
        except psutil.NoSuchProcess:
            continue
    return out
