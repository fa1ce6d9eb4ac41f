"""`deltastream replay` and `deltastream export`: argument parsing and progress display."""
from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from producers.replay.record import ReplayCompleted, ReplayRecord

_RELATIVE = re.compile(r"^-(\d+(?:\.\d+)?)([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(text: str, now: dt.datetime | None = None) -> dt.datetime:
    """ISO-8601 (naive = UTC), `now`, or relative to now: `-30m`, `-2h`, `-1d`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    text = text.strip()
    if text == "now":
        return now
    rel = _RELATIVE.match(text)
    if rel:
        return now - dt.timedelta(seconds=float(rel.group(1)) * _UNIT_SECONDS[rel.group(2)])
    try:
        value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use ISO-8601 (2026-11-26T09:15:00Z), 'now' or -30m/-2h/-1d") from None
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


def with_progress(items: Iterable[ReplayRecord | ReplayCompleted], console: Console,
                  total: int | None = None) -> Iterator[ReplayRecord | ReplayCompleted]:
    """Show records, simulated time and rate while passing items through."""
    progress = Progress(TextColumn("[bold]replay"), BarColumn(), TextColumn("{task.completed:,} records"),
                        TextColumn("{task.fields[sim]}"), TextColumn("{task.fields[rate]}"), TimeElapsedColumn(),
                        console=console, transient=False)
    started = time.monotonic()
    with progress:
        task = progress.add_task("replay", total=total, sim="", rate="")
        count, last_refresh = 0, 0.0
        for item in items:
            if isinstance(item, ReplayCompleted):
                console.print(f"[green]replay completed[/] after {item.records:,} records; continuing live")
            else:
                count += 1
                now = time.monotonic()
                if now - last_refresh > 0.2:
                    progress.update(task, completed=count, sim=f"at {item.timestamp:%Y-%m-%d %H:%M:%S}Z",
                                    rate=f"{count / max(now - started, 1e-9):,.0f}/s")
                    last_refresh = now
            yield item
        progress.update(task, completed=count, total=count,
                        rate=f"{count / max(time.monotonic() - started, 1e-9):,.0f}/s")
