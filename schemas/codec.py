"""Bytes on the wire: JSON via orjson, plus the `ds-schema` and content-type headers.

Two ways to publish: `encode(record)` for a validated model, and `encode_dict(d)` for a
plain dict built in a hot loop (the feed, ~50k quotes/s), which skips pydantic entirely.
Both write the same JSON for the same record: fixed-width `...Z` timestamps, `YYYY-MM-DD`
dates, NaN/inf as null.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from schemas.records import ALL_RECORDS, Record, iso_z

R = TypeVar("R", bound=Record)

MODELS_BY_SCHEMA: dict[str, type[Record]] = {m.SCHEMA: m for m in ALL_RECORDS}
SCHEMA_HEADER = "ds-schema"
CONTENT_TYPE = b"application/json"

# Datetimes go through _default so they are always written with microseconds (orjson
# drops ".000000", and mixed widths would not sort as strings). orjson writes NaN and
# ±inf as null, numpy floats included (needs OPT_SERIALIZE_NUMPY).
_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_SERIALIZE_NUMPY


class SchemaError(ValueError):
    """A message that is not JSON or does not match its record schema; `reason` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_z(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def headers(schema_id: str) -> list[tuple[str, bytes]]:
    """Kafka headers for a record of `schema_id` (e.g. "option_chain.v1")."""
    if schema_id not in MODELS_BY_SCHEMA:
        raise ValueError(f"unknown schema {schema_id!r}")
    return [(SCHEMA_HEADER, schema_id.encode()), ("content-type", CONTENT_TYPE)]


def schema_of(hdrs: list[tuple[str, bytes | None]] | None) -> str | None:
    """The `ds-schema` id in a consumed message's headers, if any."""
    for name, value in hdrs or ():
        if name == SCHEMA_HEADER and value is not None:
            return value.decode("utf-8", errors="replace")
    return None


def model_for(schema_id: str | None) -> type[Record]:
    """The model of a schema id; SchemaError when it is missing or unknown."""
    try:
        return MODELS_BY_SCHEMA[schema_id]  # type: ignore[index]
    except KeyError:
        raise SchemaError(f"unknown schema {schema_id!r}") from None


def encode(record: Record) -> bytes:
    """A validated record as JSON bytes."""
    return orjson.dumps(record.model_dump(by_alias=True), default=_default, option=_OPTIONS)


def encode_dict(data: dict[str, Any]) -> bytes:
    """The fast path: a plain dict in a record's shape as JSON bytes, without validation.
    Accepts datetimes (naive = UTC), dates, numpy scalars and arrays; NaN becomes null."""
    return orjson.dumps(data, default=_default, option=_OPTIONS)


def decode_dict(data: bytes | bytearray | memoryview | str | None) -> dict[str, Any]:
    """A JSON object as a dict, unvalidated; SchemaError if it is not one."""
    if not data:
        raise SchemaError("empty message")
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"malformed JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SchemaError(f"expected a JSON object, got {type(value).__name__}")
    return value


def _reason(model: type[Record], exc: ValidationError) -> str:
    errors = exc.errors(include_url=False)
    if errors[0]["type"] == "json_invalid":
        return f"malformed JSON: {errors[0]['msg']}"
    parts = []
    for err in errors[:3]:
        where = ".".join(str(p) for p in err["loc"]) or "record"
        parts.append(f"{where}: {err['msg']}")
    more = f" (+{len(errors) - 3} more)" if len(errors) > 3 else ""
    return f"{model.SCHEMA}: " + "; ".join(parts) + more


def decode(data: bytes | bytearray | memoryview | str | None, model: type[R]) -> R:
    """Parse and validate one message; SchemaError(reason) if it is not a valid `model`."""
    if not data:
        raise SchemaError("empty message")
    if isinstance(data, memoryview):
        data = bytes(data)
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise SchemaError(_reason(model, exc)) from None
