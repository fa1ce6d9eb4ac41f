"""The `deltastream` command line."""
from __future__ import annotations

import logging
import sys
from typing import NoReturn, Optional

import typer
from pydantic import ValidationError

from deltastream.settings import Settings, get_settings

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="DeltaStream: options market data through Kafka, end to end.")
topics_app = typer.Typer(no_args_is_help=True, help="Kafka topics.")
schemas_app = typer.Typer(no_args_is_help=True, help="Published JSON Schemas.")
app.add_typer(topics_app, name="topics")
app.add_typer(schemas_app, name="schemas")
bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks that print figures (see bench/).")
app.add_typer(bench_app, name="bench")


def fail(message: str, code: int = 2) -> NoReturn:
    typer.secho(f"deltastream: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    """Settings from the environment, or a one-line reason per bad variable and exit 2."""
    try:
        return get_settings()
    except ValidationError as exc:
        reasons = []
        for err in exc.errors():
            field = ".".join(str(p) for p in err["loc"])
            where = f"DELTASTREAM_{field.upper()}" if field else "settings"
            reasons.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
        fail("configuration error: " + "; ".join(reasons))


def setup_logging(settings: Settings, service: str | None = None) -> None:
    logging.basicConfig(level=settings.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if service is not None:  # a long-running process: also ship its logs to deltastream.logs
        from gateways.logs.shipping import install_log_shipping

        install_log_shipping(settings, service)


@app.command()
def up(servers_only: bool = typer.Option(False, "--servers-only", help="Start only Kafka, MongoDB, Redis.")) -> None:
    """Start the embedded servers and the whole pipeline; Ctrl-C stops everything."""
    from deltastream.runtime.servers import MissingServerBinary
    from deltastream.runtime.up import StartupError, run_up

    settings = load_settings()
    try:
        code = run_up(settings, with_pipeline=not servers_only)
    except (StartupError, MissingServerBinary) as exc:
        fail(str(exc))
    raise typer.Exit(code)


@app.command()
def status(timeout: float = typer.Option(2.0, help="Seconds to wait for each component.")) -> None:
    """Report each component as up or down (exit 1 if any is down)."""
    from deltastream.runtime.status import collect_status, render_status

    results = collect_status(load_settings(), timeout)
    typer.echo(render_status(results))
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


@topics_app.command("create")
def topics_create(prefix: Optional[str] = typer.Option(None, help="Topic name prefix, e.g. replay.")) -> None:
    """Create every DeltaStream topic that does not exist yet."""
    from deltastream.runtime.probes import wait_ready
    from deltastream.runtime.topics import ensure_topics

    settings = load_settings()
    try:
        wait_ready(settings, ("kafka",), timeout=30)
    except TimeoutError as exc:
        fail(str(exc))
    created = ensure_topics(settings, prefix)
    typer.echo(f"created {len(created)} topic(s)" + (": " + ", ".join(created) if created else ""))


@topics_app.command("list")
def topics_list() -> None:
    """List the topic registry: name, partitions, schema."""
    from schemas.topics import topic_specs

    for spec in topic_specs(load_settings().topic_prefix):
        typer.echo(f"{spec.name:<28} {spec.partitions:>3}  {spec.schema.SCHEMA:<24} key={spec.key}")


@schemas_app.command("export")
def schemas_export(check: bool = typer.Option(False, "--check", help="Only verify the files are current.")) -> None:
    """Write one JSON Schema file per record into schemas/json/."""
    from schemas.export import main as export_main

    raise typer.Exit(export_main(["--check"] if check else []))


@app.command()
def feed(
    snapshots: Optional[int] = typer.Option(None, min=1, help="Stop after this many market snapshots."),
    simulated: bool = typer.Option(False, "--simulated", help="Simulated clock: publish flat out, no sleeping."),
    start: Optional[str] = typer.Option(None, help="Simulated clock start, ISO-8601 (with --simulated)."),
) -> None:
    """Run the synthetic market feed into Kafka (settings: DELTASTREAM_FEED_*, _PRODUCTS)."""
    import datetime as dt

    from producers.feed.run import FeedOptions, run_feed, synthetic_provider

    settings = load_settings()
    setup_logging(settings, "feed")
    try:
        start_at = dt.datetime.fromisoformat(start.replace("Z", "+00:00")) if start else None
        if start_at is not None and start_at.tzinfo is None:
            start_at = start_at.replace(tzinfo=dt.timezone.utc)
        options = FeedOptions(snapshots=snapshots, realtime=not simulated, start=start_at)
        provider = synthetic_provider(settings, options)
    except ValueError as exc:  # unknown product, bad date, bad market parameters
        fail(f"feed: {exc}")
    try:
        stats = run_feed(settings, options, provider)
    except TimeoutError as exc:
        fail(str(exc))
    raise typer.Exit(0 if stats.failed == 0 else 1)


@app.command()
def process() -> None:
    """Run a stream-processor worker (consumer group DELTASTREAM_PROCESSOR_APP_ID)."""
    from stream_processors.run import run_worker

    settings = load_settings()
    setup_logging(settings, "processor")
    try:
        code = run_worker(settings)
    except TimeoutError as exc:
        fail(str(exc))
    raise typer.Exit(code or 0)


@app.command()
def sink(store: str = typer.Argument(..., help="mongo or redis")) -> None:
    """Run a sink connector: Kafka → MongoDB history, or Kafka → Redis latest values + pub/sub."""
    from sinks.run import run_mongo_sink, run_redis_sink

    runners = {"mongo": run_mongo_sink, "redis": run_redis_sink}
    if store not in runners:
        fail(f"unknown sink {store!r}; choose mongo or redis")
    settings = load_settings()
    setup_logging(settings, f"sink-{store}")
    try:
        code = runners[store](settings)
    except TimeoutError as exc:
        fail(str(exc))
    raise typer.Exit(code or 0)


def _replay_source(source: str):
    from pathlib import Path

    if source in ("kafka", "mongo"):
        return source
    path = Path(source)
    if not path.exists():
        fail(f"replay: no such file {source!r} (use kafka, mongo or a .parquet/.jsonl export)")
    return path


@app.command()
def replay(
    topics: str = typer.Option(..., help="Comma-separated topics, e.g. market.option_chains,market.underlying"),
    start: str = typer.Option(..., help="ISO-8601 time (naive = UTC), 'now', or -30m / -2h / -1d"),
    end: str = typer.Option("now", help="Same forms as --start, or 'live' to continue into live data"),
    speed: Optional[float] = typer.Option(None, min=0.001, help="Pace by event time, e.g. 10 = ten times faster"),
    max_speed: bool = typer.Option(False, "--max-speed", help="No pacing (the default without --speed)"),
    to_prefix: Optional[str] = typer.Option(None, help="Republish into PREFIX+topic (e.g. replay.)"),
    group: Optional[str] = typer.Option(None, help="Consumer group id of this replay"),
    source: str = typer.Option("kafka", help="kafka, mongo, or an exported .parquet/.jsonl file"),
    quiet: bool = typer.Option(False, "--quiet", help="No progress display"),
) -> None:
    """Replay a time range in event-time order: to stdout (JSON lines) or into prefixed topics."""
    import sys

    from rich.console import Console

    from producers.replay.api import TopicRepublisher, replay as run_replay
    from producers.replay.cli import parse_time, with_progress
    from producers.replay.record import ReplayRecord

    settings = load_settings()
    if speed is not None and max_speed:
        fail("replay: give either --speed or --max-speed")
    try:
        t0 = parse_time(start)
        t1 = None if end == "live" else parse_time(end)
        items = run_replay(settings, [t.strip() for t in topics.split(",") if t.strip()], t0, t1,
                           speed=None if max_speed else speed, source=_replay_source(source), group=group)
        republish = TopicRepublisher(settings, to_prefix) if to_prefix is not None else None
    except ValueError as exc:
        fail(f"replay: {exc}")
    console = Console(stderr=True)
    stream = items if quiet else with_progress(items, console)
    out = sys.stdout.buffer
    try:
        for item in stream:
            if republish is not None:
                republish(item)
            elif isinstance(item, ReplayRecord):
                out.write(item.value + b"\n")
    except KeyboardInterrupt:
        console.print("replay stopped")
    except ValueError as exc:  # e.g. a topic that does not exist
        fail(f"replay: {exc}")
    finally:
        if republish is not None and republish.flush(60):
            fail("replay: some records were not delivered to the prefixed topics", 1)


@app.command()
def export(
    topics: str = typer.Option(..., help="Comma-separated topics"),
    start: str = typer.Option(..., help="ISO-8601 time, 'now', or -30m / -2h / -1d"),
    end: str = typer.Option("now", help="Same forms as --start"),
    out: str = typer.Option(..., help="Output file: .parquet or .jsonl"),
    source: str = typer.Option("kafka", help="kafka or mongo"),
) -> None:
    """Write a topic range to Parquet or JSON Lines, to replay later (--source FILE)."""
    from pathlib import Path

    from rich.console import Console

    from producers.replay.api import replay as run_replay
    from producers.replay.cli import parse_time, with_progress
    from producers.replay.files import export_records

    settings = load_settings()
    try:
        items = run_replay(settings, [t.strip() for t in topics.split(",") if t.strip()], parse_time(start),
                           parse_time(end), source=_replay_source(source))
        console = Console(stderr=True)
        written = export_records(with_progress(items, console), Path(out))
    except ValueError as exc:
        fail(f"export: {exc}")
    console.print(f"wrote {written:,} records to {out}")


@app.command()
def audit(
    last: Optional[str] = typer.Option(None, help="The window ending now, e.g. 30s, 5m, 1h"),
    start: Optional[str] = typer.Option(None, help="ISO-8601 time, or -30m / -2h / -1d"),
    end: str = typer.Option("now", help="Same forms as --start"),
    wait: float = typer.Option(10.0, help="Seconds to let the stores catch up before a record counts as missing"),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON"),
) -> None:
    """Compare what the feed produced with MongoDB, Redis and the analytics; exit 1 on any loss or duplicate."""

    import orjson
    from rich.console import Console
    from rich.table import Table

    from deltastream.audit import audit as run_audit
    from producers.replay.cli import parse_time

    settings = load_settings()
    try:
        t1 = parse_time(end)
        if last is not None:
            t0 = parse_time(f"-{last.lstrip('-')}", now=t1)
        elif start is not None:
            t0 = parse_time(start)
        else:
            fail("audit: give --last (e.g. 30s) or --start")
        report = run_audit(settings, t0, t1, wait)
    except ValueError as exc:
        fail(f"audit: {exc}")
    if as_json:
        sys.stdout.write(orjson.dumps(report.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        table = Table(title=f"audit {t0:%Y-%m-%d %H:%M:%S} .. {t1:%H:%M:%S} UTC")
        for col in ("check", "expected", "found", "missing", "duplicated", "mismatched", ""):
            table.add_column(col, justify="left" if col in ("check", "") else "right")
        for c in report.checks:
            table.add_row(c.name, f"{c.expected:,}", f"{c.found:,}", str(len(c.missing)),
                          str(len(c.duplicated)), str(len(c.mismatched)),
                          f"[green]ok[/] {c.note}" if c.ok else "[red]" + ", ".join((c.missing + c.duplicated + c.mismatched)[:2]))
        console = Console()
        console.print(table)
        console.print(f"records produced twice on Kafka (producer retries, absorbed downstream): "
                      f"{report.kafka_duplicates}")
        console.print("[green]nothing missing or duplicated" if report.ok else "[red]audit failed")
    raise typer.Exit(0 if report.ok else 1)


@bench_app.command("pipeline", context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
                   add_help_option=False)
def bench_pipeline(ctx: typer.Context) -> None:
    """End to end: sustained rate per stage, feed→WebSocket/MongoDB latency, CPU and RSS (--help)."""
    from bench.bench_pipeline import main as run_bench

    raise typer.Exit(run_bench(ctx.args))


@app.command()
def serve(service: str = typer.Argument(..., help="api, auth, storage, analytics or logs")) -> None:
    """Run one HTTP service on its configured port."""
    from gateways.serve import RUNNERS, SERVICES, serve as run_service

    if service not in SERVICES and service not in RUNNERS:
        fail(f"unknown service {service!r}; choose from {', '.join([*SERVICES, *RUNNERS])}")
    settings = load_settings()
    setup_logging(settings, service)
    run_service(service, settings)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
