"""Bytes on the wire: JSON via orjson, with the `ds-schema` and content-type headers."""
from __future__ import annotations

from typing import Any, TypeVar

import orjson
from pydantic import ValidationError

from schemas.records import ALL_RECORDS, Record

R = TypeVar("R", bound=Record)
MODELS_BY_SCHEMA: dict[str, type[Record]] = {m.SCHEMA: m for m in ALL_RECORDS}
# NaN/inf become null (orjson's default); numpy scalars and arrays serialise natively.
_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC | orjson.OPT_SERIALIZE_NUMPY


class SchemaError(ValueError):
    """A message that is not valid JSON or does not match its record schema."""


def headers(schema_id: str) -> list[tuple[str, bytes]]:
    return [("ds-schema", schema_id.encode()), ("content-type", b"application/json")]


def encode(record: Record) -> bytes:
    return orjson.dumps(record.model_dump(mode="json"))


def encode_dict(data: dict[str, Any]) -> bytes:
    """Fast path for records built as plain dicts (the feed's hot loop)."""
    return orjson.dumps(data, option=_OPTIONS)


def decode_dict(data: bytes | str) -> dict[str, Any]:
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise SchemaError(f"invalid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise SchemaError(f"expected a JSON object, got {type(value).__name__}")
    return value


def decode(data: bytes | str, model: type[R]) -> R:
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "record"
        kind = "invalid JSON" if first["type"] == "json_invalid" else f"{model.SCHEMA} {where}"
        raise SchemaError(f"{kind}: {first['msg']}") from None


def model_for_headers(hdrs: list[tuple[str, bytes]] | None) -> type[Record] | None:
    for name, value in hdrs or ():
        if name == "ds-schema":
            return MODELS_BY_SCHEMA.get(value.decode(errors="replace"))
    return None
