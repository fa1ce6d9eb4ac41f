"""Lazy, process-wide model loading: each model loads once per process (on first use or in
a background warm-up) and a load failure is remembered, reported on `/health` and turned
into 503s by the routes that need that model, never into a crash."""
from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Callable, Generic, Literal, TypeVar

T = TypeVar("T")
log = logging.getLogger("deltastream.ai")
State = Literal["idle", "loading", "ready", "failed"]

# Nothing may be fetched from a model hub at run time: every model is a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class ModelUnavailable(RuntimeError):
    """A model the request needs could not be loaded (the reason is in the message)."""


class Slot(Generic[T]):
    def __init__(self, kind: str, name: str, loader: Callable[[], T]) -> None:
        self.kind, self.name, self._loader = kind, name, loader
        self.state: State = "idle"
        self.error: str | None = None
        self.load_seconds: float | None = None
        self.info: dict[str, Any] = {}
        self._value: T | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        if self.state == "ready":
            return self._value  # type: ignore[return-value]
        with self._lock:
            if self.state == "idle":
                self._load()
        if self.state != "ready":
            raise ModelUnavailable(f"{self.kind} model {self.name} unavailable: {self.error}")
        return self._value  # type: ignore[return-value]

    def _load(self) -> None:
        self.state = "loading"
        started = time.monotonic()
        try:
            self._value = self._loader()
        except ImportError as exc:
            self._fail(f"the ai extra is not installed (pip install -e '.[ai]'): {exc}")
        except Exception as exc:  # noqa: BLE001 - any loader failure degrades the service
            self._fail(f"{type(exc).__name__}: {exc}")
        else:
            self.load_seconds = round(time.monotonic() - started, 2)
            self.info = dict(getattr(self._value, "info", {}) or {})
            self.state = "ready"
            log.info("%s model %s loaded in %.1f s", self.kind, self.name, self.load_seconds)

    def _fail(self, reason: str) -> None:
        self.error = reason[:500]
        self.state = "failed"
        log.error("%s model %s failed to load: %s", self.kind, self.name, self.error)

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "state": self.state}
        if self.error:
            out["error"] = self.error
        if self.load_seconds is not None:
            out["load_seconds"] = self.load_seconds
        return out | self.info


_SLOTS: dict[tuple[str, ...], Slot[Any]] = {}
_SLOTS_LOCK = threading.Lock()


def slot(key: tuple[str, ...], kind: str, name: str, loader: Callable[[], T]) -> Slot[T]:
    """The process's one slot for `key` (created on first call)."""
    with _SLOTS_LOCK:
        found = _SLOTS.get(key)
        if found is None:
            found = _SLOTS[key] = Slot(kind, name, loader)
        return found
