"""Export replay records to Parquet or JSON Lines, and read them back in replay order.

The embedded broker keeps topics in memory only: these files (and MongoDB) are what make a
backtest of yesterday possible after a restart. Both formats keep the Kafka coordinates,
the event time, the key and the headers; Parquet keeps the exact value bytes, JSON Lines
embeds the value as JSON (readable; equal as JSON, not necessarily byte for byte).
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Iterable, Iterator

import orjson

from producers.replay.record import ReplayRecord

_COLUMNS = ("topic", "partition", "offset", "timestamp_ms", "key", "value", "headers")


def _format(path: Path) -> str:
    suffixes = "".join(path.suffixes[-2:])
    if path.suffix == ".parquet":
        return "parquet"
    if path.suffix in (".jsonl", ".ndjson") or suffixes in (".jsonl.gz",):
        return "jsonl"
    raise ValueError(f"{path}: expected a .parquet or .jsonl file")


def export_records(records: Iterable[ReplayRecord], path: Path, batch_rows: int = 50_000) -> int:
    """Write records to `path` (format from the suffix); returns how many were written."""
    return (_export_parquet if _format(path) == "parquet" else _export_jsonl)(records, path, batch_rows)


def _export_jsonl(records: Iterable[ReplayRecord], path: Path, _batch: int) -> int:
    count = 0
    with open(path, "wb") as out:
        for r in records:
            out.write(orjson.dumps({
                "topic": r.topic, "partition": r.partition, "offset": r.offset,
                "timestamp_ms": r.timestamp_ms,
                "key": None if r.key is None else base64.b64encode(r.key).decode(),
                "headers": [[k, base64.b64encode(v or b"").decode()] for k, v in r.headers],
                "value": orjson.Fragment(r.value) if _is_json(r.value) else None,
                "value_b64": None if _is_json(r.value) else base64.b64encode(r.value).decode(),
            }))
            out.write(b"\n")
            count += 1
    return count


def _is_json(value: bytes) -> bool:
    try:
        orjson.loads(value)
        return True
    except orjson.JSONDecodeError:
        return False


def _export_parquet(records: Iterable[ReplayRecord], path: Path, batch_rows: int) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([("topic", pa.string()), ("partition", pa.int32()), ("offset", pa.int64()),
                        ("timestamp_ms", pa.int64()), ("key", pa.binary()), ("value", pa.binary()),
                        ("headers", pa.list_(pa.struct([("name", pa.string()), ("value", pa.binary())])))])
    count = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        rows: list[ReplayRecord] = []
        for r in records:
            rows.append(r)
            if len(rows) >= batch_rows:
                writer.write_table(_table(rows, schema))
                count += len(rows)
                rows = []
        if rows or count == 0:
            writer.write_table(_table(rows, schema))
            count += len(rows)
    return count


def _table(rows: list[ReplayRecord], schema):
    import pyarrow as pa

    return pa.table({
        "topic": [r.topic for r in rows], "partition": [r.partition for r in rows],
        "offset": [r.offset for r in rows], "timestamp_ms": [r.timestamp_ms for r in rows],
        "key": [r.key for r in rows], "value": [r.value for r in rows],
        "headers": [[{"name": k, "value": v} for k, v in r.headers] for r in rows],
    }, schema=schema)


def read_records(path: Path, topics: list[str] | None = None, start_ms: int | None = None,
                 end_ms: int | None = None) -> Iterator[ReplayRecord]:
    """Records from an exported file, filtered, in replay order."""
    rows = list(_read_parquet(path) if _format(path) == "parquet" else _read_jsonl(path))
    wanted = set(topics) if topics else None
    rows = [r for r in rows if (wanted is None or r.topic in wanted)
            and (start_ms is None or r.timestamp_ms >= start_ms)
            and (end_ms is None or r.timestamp_ms <= end_ms)]
    rows.sort(key=lambda r: r.order)
    return iter(rows)


def _read_jsonl(path: Path) -> Iterator[ReplayRecord]:
    with open(path, "rb") as src:
        for line_no, line in enumerate(src, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
                value = (orjson.dumps(row["value"]) if row.get("value") is not None
                         else base64.b64decode(row["value_b64"]))
                yield ReplayRecord(row["topic"], row["partition"], row["offset"], row["timestamp_ms"],
                                   None if row["key"] is None else base64.b64decode(row["key"]), value,
                                   tuple((k, base64.b64decode(v)) for k, v in row["headers"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ValueError(f"{path}:{line_no}: not a DeltaStream export line ({exc})") from None


def _read_parquet(path: Path) -> Iterator[ReplayRecord]:
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=list(_COLUMNS))
    for row in table.to_pylist():
        yield ReplayRecord(row["topic"], row["partition"], row["offset"], row["timestamp_ms"], row["key"],
                           row["value"], tuple((h["name"], h["value"]) for h in row["headers"]))
