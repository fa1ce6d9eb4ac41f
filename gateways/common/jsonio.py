"""JSON out of the gateways: stored documents and cached values as ISO-8601 UTC JSON.

Stored documents keep what the pipeline published, with real datetimes in MongoDB
(docs/storage.md); orjson writes them back as the same fixed-width `...Z` strings
(`schemas.records.iso_z`). Cached `latest:*` values are already that JSON and are sent as
they are, without parsing.
"""
from __future__ import annotations

import datetime as dt
from typing import Any

import orjson
from fastapi.responses import JSONResponse

from gateways.common.errors import invalid
from schemas.records import as_utc, iso_z

_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _default(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return iso_z(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)  # ObjectId and the like


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTIONS)


class JSONBytes(JSONResponse):
    """A response whose body is already JSON (a cached value, or `dumps` of documents).

    A JSONResponse subclass so that OpenAPI documents the route's response model."""

    def render(self, content: Any) -> bytes:
        return content if isinstance(content, bytes) else dumps(content)


def json_response(value: Any, status_code: int = 200) -> JSONBytes:
    return JSONBytes(dumps(value), status_code=status_code)


def public(doc: dict[str, Any]) -> dict[str, Any]:
    """A stored document as published: without MongoDB's `_id` (it equals event_id)."""
    doc.pop("_id", None)
    return doc


def utc_param(value: dt.datetime | None, name: str) -> dt.datetime | None:
    """A query-string time as aware UTC (naive = UTC); 422 when it cannot be expressed in UTC."""
    if value is None:
        return None
    try:
        when = as_utc(value)
        when.timestamp()
    except (OverflowError, ValueError, OSError):
        raise invalid(("query", name), f"{name}: time out of range", value) from None
    return when


def time_range(start: dt.datetime | None, end: dt.datetime | None) -> dict[str, dt.datetime]:
    """A MongoDB range filter for [start, end]; 422 when start is after end."""
    start, end = utc_param(start, "start"), utc_param(end, "end")
    if start is not None and end is not None and start > end:
        raise invalid(("query", "start"), f"start {iso_z(start)} is after end {iso_z(end)}")
    out = {}
    if start is not None:
        out["$gte"] = start
    if end is not None:
        out["$lte"] = end
    return out


_INT64 = (-(2**63), 2**63 - 1)


def storable(value: Any, depth: int = 0) -> Any:
    """`value` if MongoDB can store it as given: UTF-8 text (no lone surrogates), 64-bit
    integers, field names without a leading `$` or dots, nesting under 50; else ValueError."""
    if depth > 50:
        raise ValueError("nested too deeply (more than 50 levels)")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ValueError("text must be valid Unicode (no lone surrogates)") from None
    elif isinstance(value, bool) or value is None or isinstance(value, float):
        pass
    elif isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise ValueError(f"integer {value} does not fit in 64 bits")
    elif isinstance(value, dict):
        for key, item in value.items():
            storable(key, depth + 1)
            if key.startswith("$") or "." in key or "\x00" in key:
                raise ValueError(f"field name {key[:40]!r} may not start with '$' or hold '.' or NUL")
            storable(item, depth + 1)
    elif isinstance(value, (list, tuple)):
        for item in value:
            storable(item, depth + 1)
    return value
