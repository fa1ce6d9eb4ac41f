from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from schemas.export import JSON_DIR


@pytest.fixture(scope="session")
def validators() -> dict[str, jsonschema.Draft202012Validator]:
    """A validator per exported schema file, keyed by schema id (as an outside consumer would)."""
    out = {}
    for path in Path(JSON_DIR).glob("*.json"):
        out[path.stem] = jsonschema.Draft202012Validator(
            json.loads(path.read_text()), format_checker=jsonschema.FormatChecker())
    return out
