"""Session fixtures of the gateway tests: one dataset written by the real pipeline
(`tests.gateways.dataset`), the gateway app on it, and a logged-in user."""
from __future__ import annotations

from typing import Iterator

import pytest
from fastapi.testclient import TestClient

from gateways.api.app import create_app
from tests.gateways.dataset import Dataset, pipeline_dataset
from tests.stack import Stack


@pytest.fixture(scope="session")
def dataset(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Dataset]:
    with pipeline_dataset(stack, tmp_path_factory.mktemp("gateways")) as data:
        yield data


@pytest.fixture(scope="session")
def client(dataset: Dataset) -> Iterator[TestClient]:
    with TestClient(create_app(dataset.settings)) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def token(client: TestClient) -> str:
    creds = {"email": "routes@example.com", "password": "a long enough password"}
    assert client.post("/api/auth/register", json=creds).status_code in (201, 409)
    response = client.post("/api/auth/login", json=creds)
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


@pytest.fixture(scope="session")
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
