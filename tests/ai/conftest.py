"""AI service tests: the real models (offline), one load per session, over the dataset the
real pipeline writes (the gateway tests' `dataset` fixture: feed, processors, both sinks).

Every test module starts with `pytest.importorskip` of the `.[ai]` extra, so without it the
AI tests skip with that reason; `make test` installs the extra, so CI runs them.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from deltastream.settings import Settings
from gateways.analytics.router import analytics_router
from gateways.common.service import service_app
from gateways.common.tokens import issue_token
from tests.gateways.conftest import dataset  # noqa: F401 - the shared pipeline dataset fixture
from tests.gateways.conftest import Dataset

AI_EXTRA = "the ai extra is not installed (pip install -e '.[dev,ai]')"


@pytest.fixture(scope="session")
def ai_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data dir for every AI settings object: the sentiment head is trained once per session."""
    return tmp_path_factory.mktemp("ai-data")


@pytest.fixture(scope="session")
def ai_settings(dataset: Dataset, ai_data_dir: Path) -> Settings:  # noqa: F811
    return dataset.settings.model_copy(update={"data_dir": ai_data_dir, "ai_preload": False})


def ai_app(settings: Settings) -> FastAPI:
    """The AI router mounted next to the analytics router, as the API gateway mounts them."""
    from gateways.ai.router import ai_router

    return service_app("ai-tests", "AI tests", settings, [analytics_router(), ai_router()], prefix="/api")


@pytest.fixture(scope="session")
def ai_client(ai_settings: Settings) -> Iterator[TestClient]:
    with TestClient(ai_app(ai_settings)) as client:
        yield client


@pytest.fixture(scope="session")
def ai_auth(ai_settings: Settings) -> dict[str, str]:
    token, _ = issue_token(ai_settings, "ai-tests@example.com", "access")
    return {"Authorization": f"Bearer {token}"}
