"""Export one JSON Schema file per record into schemas/json/ (the outside consumers' contract).

    python -m schemas.export          # write the files
    python -m schemas.export --check  # exit 1 if any file is stale
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from schemas.records import ALL_RECORDS, Record

JSON_DIR = Path(__file__).resolve().parent / "json"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def schema_document(model: type[Record]) -> dict:
    schema = model.model_json_schema(mode="serialization")
    doc = (model.__doc__ or "").strip()
    return {"$schema": DIALECT, "$id": model.SCHEMA, **schema,
            "title": model.__name__, "description": " ".join(doc.split())}


def render(model: type[Record]) -> str:
    return json.dumps(schema_document(model), indent=2, sort_keys=True) + "\n"


def rendered_files() -> dict[str, str]:
    return {f"{m.SCHEMA}.json": render(m) for m in ALL_RECORDS}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only verify the files are current")
    parser.add_argument("--dir", type=Path, default=JSON_DIR)
    args = parser.parse_args(argv)
    files = rendered_files()
    if args.check:
        stale = [name for name, text in files.items()
                 if not (args.dir / name).exists() or (args.dir / name).read_text() != text]
        for name in stale:
            print(f"stale: {args.dir / name}", file=sys.stderr)
        return 1 if stale else 0
    args.dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (args.dir / name).write_text(text)
    print(f"wrote {len(files)} schemas to {args.dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
