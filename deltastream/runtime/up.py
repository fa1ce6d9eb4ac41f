"""`deltastream up`: the embedded servers and the pipeline, under honcho.

honcho gives each child its own process group, prefixes and multiplexes their output,
forwards Ctrl-C/SIGTERM and SIGKILLs whatever has not exited some seconds later; when any child
dies it stops the rest, so a broken pipeline is loud rather than half-alive.
"""
from __future__ import annotations

import datetime as dt
import os
import threading

import honcho.manager as honcho_manager
from honcho.manager import Manager
from honcho.printer import Message

from deltastream.runtime.pipeline import ProcessSpec, pipeline_processes
from deltastream.runtime.probes import STORE_PROBES, port_in_use, wait_ready
from deltastream.runtime.servers import ServerSpec, embedded_specs, prepare_data_dir
from deltastream.settings import Settings


class StartupError(RuntimeError):
    """A problem found before anything starts; the message is the whole story."""


def preflight(settings: Settings, servers: list[ServerSpec], processes: list[ProcessSpec]) -> None:
    """Fail fast, with one line, on taken ports and unreachable external servers."""
    for name, port, env in [(s.name, s.port, s.port_env) for s in servers] + [
        (p.name, p.port, p.port_env) for p in processes if p.port is not None
    ]:
        if port_in_use(settings.host, port):
            raise StartupError(f"port {port} ({name}) on {settings.host} is already in use; "
                               f"stop what holds it or set {env} to a free port")
    external = {"kafka": ("DELTASTREAM_KAFKA_BOOTSTRAP", not settings.embedded_kafka),
                "mongodb": ("DELTASTREAM_MONGO_URL", not settings.embedded_mongo),
                "redis": ("DELTASTREAM_REDIS_URL", not settings.embedded_redis)}
    for component, (env, is_external) in external.items():
        if is_external:
            result = STORE_PROBES[component](settings, 5.0)
            if not result.ok:
                raise StartupError(f"cannot reach {component} at {result.address} ({env}): {result.detail}")


def where_table(settings: Settings, servers: list[ServerSpec], processes: list[ProcessSpec]) -> str:
    rows = [("kafka", settings.kafka_servers, "embedded Tansu" if settings.embedded_kafka else "external"),
            ("mongodb", settings.mongo_uri, "embedded nx-27017" if settings.embedded_mongo else "external"),
            ("redis", settings.redis_uri, "embedded redis-server" if settings.embedded_redis else "external")]
    for p in processes:
        where = f"{p.scheme}://{settings.host}:{p.port}{p.url_path}" if p.port else "-"
        rows.append((p.name, where, "deltastream " + " ".join(p.args)))
    width = max(len(r[0]) for r in rows)
    lines = [f"  {name:<{width}}  {addr:<32}  {what}" for name, addr, what in rows]
    return ("DeltaStream is up (data in %s):\n%s\nDashboard: http://%s:%d/ (API docs: /docs). "
            "Ctrl-C stops everything.\n" % (settings.data_dir.resolve(), "\n".join(lines), settings.host,
                                               settings.api_port))


def run_up(settings: Settings, with_pipeline: bool = True) -> int:
    servers = embedded_specs(settings)
    processes = pipeline_processes(settings) if with_pipeline else []
    preflight(settings, servers, processes)
    prepare_data_dir(settings)

    # honcho SIGKILLs what is still running KILL_WAIT seconds after a stop (5 by default):
    # leave the processes the servers' grace to flush and commit, and a margin.
    honcho_manager.KILL_WAIT = settings.shutdown_grace_seconds + 4
    manager = Manager()
    for spec in servers:
        manager.add_process(spec.name, spec.command)
    env = dict(os.environ)
    for proc in processes:
        manager.add_process(proc.name, proc.command, env=env)

    def announce_when_ready() -> None:
        def say(text: str) -> None:
            manager.events.put(Message(type="line", data=text, time=dt.datetime.now(),
                                       name="up", colour=None))
        try:
            wait_ready(settings, tuple(STORE_PROBES), timeout=90)
            from deltastream.runtime.topics import ensure_topics

            created = ensure_topics(settings)
            say(f"servers ready; {len(created)} topics created\n")
            say(where_table(settings, servers, processes))
        except Exception as exc:  # reported, and honcho keeps the children's own logs
            say(f"startup problem: {exc}\n")

    threading.Thread(target=announce_when_ready, daemon=True, name="up-ready").start()
    manager.loop()
    return manager.returncode or 0

