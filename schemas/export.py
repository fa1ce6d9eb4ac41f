"""Write one JSON Schema (draft 2020-12) per record into schemas/json/ — the files outside
consumers validate against.

    python -m schemas.export          # (re)write the files
    python -m schemas.export --check  # exit 1, listing stale files, if any is out of date
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from schemas.records import ALL_RECORDS, Record

JSON_DIR = Path(__file__).resolve().parent / "json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_document(model: type[Record]) -> dict[str, Any]:
    """The published JSON Schema of `model` (serialization mode: what is on the wire)."""
    schema = model.model_json_schema(mode="serialization")
    schema.update({
        "$schema": DIALECT,
        "$id": model.SCHEMA,
        "title": model.__name__,
        "description": " ".join((model.__doc__ or "").split()),
    })
    return schema


def render(model: type[Record]) -> str:
    # Sorted keys and a trailing newline: byte-identical output on every run.
    return json.dumps(schema_document(model), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered_files() -> dict[str, str]:
    """File name → content for every record."""
    return {f"{model.SCHEMA}.json": render(model) for model in ALL_RECORDS}


def stale_files(directory: Path = JSON_DIR) -> list[str]:
    """Files that are missing, differ from the models, or belong to no model."""
    wanted = rendered_files()
    stale = [name for name, text in wanted.items()
             if not (directory / name).is_file()
             or (directory / name).read_text(encoding="utf-8") != text]
    stale += sorted(p.name for p in directory.glob("*.json") if p.name not in wanted)
    return stale


def write_files(directory: Path = JSON_DIR) -> list[Path]:
    """(Re)write every schema file; returns the paths written. Files of no model are kept
    (a published schema is removed on purpose, by hand)."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_files().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m schemas.export",
                                     description="Export the record JSON Schemas.")
    parser.add_argument("--check", action="store_true", help="only verify the files are current")
    parser.add_argument("--dir", type=Path, default=JSON_DIR, help="output directory")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.dir)
        for name in stale:
            print(f"stale: {args.dir / name}", file=sys.stderr)
        if stale:
            print("run `python -m schemas.export` to regenerate", file=sys.stderr)
        return 1 if stale else 0
    written = write_files(args.dir)
    print(f"wrote {len(written)} schemas to {args.dir}")
    for name in stale_files(args.dir):  # after writing, only files of no model remain
        print(f"warning: {args.dir / name} belongs to no record model", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
