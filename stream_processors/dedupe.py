"""Which messages a key's state has already applied, in bounded memory.

Three cases make a message change nothing (see `Seen.verdict`):

* replay: the same message delivered again after a restart or rebalance. The state keeps
  the highest source offset it applied per key (and the partition), so anything at or below
  it is skipped - exact, whatever the rate.
* duplicate: the same record produced twice (a retried send, a feed run twice). The state
  keeps the event ids of the last `limit` records it applied, with their event times.
* stale: older than every remembered record and not among them. Once ids have been
  evicted nothing older can be told apart from a duplicate, so it is dropped. With the
  default 32 ids and one record per second per key this is half a minute of lateness,
  well beyond the OHLC grace period (later than grace is dropped anyway).

Event ids are stored without the key prefix they usually repeat (`NIFTY:1795…` → `:1795…`).
"""
from __future__ import annotations

from typing import Any

DEFAULT_LIMIT = 32
NEW, REPLAY, DUPLICATE, STALE = "new", "replay", "duplicate", "stale"


class Seen:
    """A view over the `seen` part of a state dict: {"p", "o", "ids": {id: ts}, "floor"}."""

    __slots__ = ("d", "key", "limit")

    def __init__(self, d: dict[str, Any] | None, key: str, limit: int = DEFAULT_LIMIT) -> None:
        self.d = d if d is not None else {"p": None, "o": -1, "ids": {}, "floor": None}
        self.key = key
        self.limit = limit

    def _short(self, event_id: str) -> str:
        return event_id[len(self.key):] if event_id.startswith(self.key) else event_id

    def verdict(self, event_id: str, ts: int, partition: int, offset: int) -> str:
        d = self.d
        if d["p"] == partition and offset <= d["o"]:
            return REPLAY
        if self._short(event_id) in d["ids"]:
            return DUPLICATE
        if d["floor"] is not None and ts <= d["floor"]:
            return STALE
        return NEW

    def add(self, event_id: str, ts: int, partition: int, offset: int) -> None:
        d = self.d
        if d["p"] != partition:
            d["p"], d["o"] = partition, offset
        elif offset > d["o"]:
            d["o"] = offset
        ids = d["ids"]
        ids[self._short(event_id)] = ts
        while len(ids) > self.limit:
            oldest = min(ids, key=ids.__getitem__)
            evicted = ids.pop(oldest)
            d["floor"] = evicted if d["floor"] is None else max(d["floor"], evicted)

    def skip(self, partition: int, offset: int) -> None:
        """A message that changes nothing still moves the offset watermark."""
        d = self.d
        if d["p"] == partition and offset > d["o"]:
            d["o"] = offset
