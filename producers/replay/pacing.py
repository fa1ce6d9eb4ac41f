"""Pace a replay by the records' own event times, scaled by `speed` (None: flat out)."""
from __future__ import annotations

import time
from typing import Callable, Iterable, Iterator, TypeVar

T = TypeVar("T")


def paced(records: Iterable[T], speed: float | None, timestamp_ms: Callable[[T], int],
          clock: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> Iterator[T]:
    """Yield each record no earlier than its event-time offset from the first, divided by speed."""
    if speed is None:
        yield from records
        return
    if speed <= 0:
        raise ValueError(f"speed must be positive, got {speed}")
    anchor: tuple[float, int] | None = None
    for record in records:
        ts = timestamp_ms(record)
        if anchor is None:
            anchor = (clock(), ts)
        due = anchor[0] + (ts - anchor[1]) / 1000.0 / speed
        delay = due - clock()
        if delay > 0:
            sleep(delay)
        yield record
