"""The exported JSON Schema files are in sync with the models and usable by outside consumers."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema

from schemas.export import DIALECT, JSON_DIR, main, rendered_files, stale_files, write_files
from schemas.records import ALL_RECORDS


def test_committed_files_match_the_models(tmp_path):
    write_files(tmp_path)
    fresh = {p.name: p.read_text() for p in tmp_path.glob("*.json")}
    committed = {p.name: p.read_text() for p in Path(JSON_DIR).glob("*.json")}
    assert fresh == committed, "schemas/json is stale: run `python -m schemas.export`"
    assert stale_files() == []


def test_render_is_deterministic():
    assert rendered_files() == rendered_files()


def test_each_file_is_a_valid_2020_12_schema_with_its_id():
    for model in ALL_RECORDS:
        doc = json.loads((JSON_DIR / f"{model.SCHEMA}.json").read_text())
        jsonschema.Draft202012Validator.check_schema(doc)
        assert doc["$schema"] == DIALECT and doc["$id"] == model.SCHEMA
        assert doc["title"] == model.__name__ and doc["description"]
        assert "event_id" in doc["required"] and "event_id" in doc["properties"]


def test_check_mode_lists_stale_files(tmp_path, capsys):
    assert main(["--dir", str(tmp_path)]) == 0
    assert main(["--check", "--dir", str(tmp_path)]) == 0
    (tmp_path / "option_quote.v1.json").write_text("{}\n")
    (tmp_path / "ohlc_bar.v1.json").unlink()
    (tmp_path / "old_thing.v1.json").write_text("{}\n")
    capsys.readouterr()
    assert main(["--check", "--dir", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "option_quote.v1.json" in err and "ohlc_bar.v1.json" in err and "old_thing.v1.json" in err
    assert "underlying_tick.v1.json" not in err


def test_module_entry_point():
    result = subprocess.run([sys.executable, "-m", "schemas.export", "--check"],
                            capture_output=True, text=True, cwd=JSON_DIR.parents[1])
    assert result.returncode == 0, result.stderr
