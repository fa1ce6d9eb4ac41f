"""The DeltaStream processes `deltastream up` runs after the servers, one entry each.

Each process waits for the servers it needs by itself (see `bootstrap.wait_for_stack`),
so `up` can start them all at once and a process restarted alone behaves the same.
"""
from __future__ import annotations

import shlex
import sys
from dataclasses import dataclass

from deltastream.settings import Settings


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    args: list[str]  # arguments to the `deltastream` CLI
    port: int | None = None
    port_env: str | None = None
    url_path: str = ""  # what to show in the "runs where" table
    scheme: str = "http"

    @property
    def command(self) -> str:
        # `python -m deltastream` rather than the console script: works from any venv layout.
        return "exec " + shlex.join([sys.executable, "-m", "deltastream", *self.args])


def pipeline_processes(settings: Settings) -> list[ProcessSpec]:
    return [
        ProcessSpec("feed", ["feed"]),
        ProcessSpec("processor", ["process"]),
        ProcessSpec("sink-mongo", ["sink", "mongo"]),
        ProcessSpec("sink-redis", ["sink", "redis"]),
        # `/` redirects to the dashboard; the API's docs are at /docs
        ProcessSpec("api", ["serve", "api"], settings.api_port, "DELTASTREAM_API_PORT", "/"),
        ProcessSpec("socket", ["serve", "socket"], settings.socket_port, "DELTASTREAM_SOCKET_PORT", "/ws",
                    scheme="ws"),
    ]
