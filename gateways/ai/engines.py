"""The AI service's models for one configuration: embedder, sentiment classifier and
(optional) generator, each a lazy process-wide slot (`gateways.ai.slots`)."""
from __future__ import annotations

import threading
from typing import Any

from deltastream.settings import Settings
from gateways.ai.slots import ModelUnavailable, Slot, slot


class AiModels:
    def __init__(self, settings: Settings) -> None:
        cache = settings.data_dir / "ai"
        embed_name = settings.ai_embedding_model or "all-MiniLM-L6-v2 (packaged)"

        def load_embedder():
            from gateways.ai.embedding import Embedder

            return Embedder(settings.ai_embedding_model)

        self.embedder: Slot[Any] = slot(("embedding", embed_name), "embedding", embed_name, load_embedder)

        if settings.ai_sentiment_model:
            def load_sentiment():
                from gateways.ai.sentiment import TransformersSentiment

                return TransformersSentiment(settings.ai_sentiment_model)
            sent_name = settings.ai_sentiment_model
        else:
            def load_sentiment():
                from gateways.ai.sentiment import HeadSentiment

                return HeadSentiment(self.embedder.get(), cache)
            sent_name = f"logistic head on {embed_name}"
        self.sentiment: Slot[Any] = slot(("sentiment", sent_name, str(cache)), "sentiment", sent_name,
                                         load_sentiment)

        self.generator: Slot[Any] | None = None
        if settings.ai_generator.strip() != "template":
            def load_generator():
                from gateways.ai.generation import load_generator as load

                return load(settings)
            self.generator = slot(("generator", settings.ai_generator, str(cache)), "generator",
                                  settings.ai_generator, load_generator)

    def slots(self) -> dict[str, Slot[Any]]:
        out = {"embedding": self.embedder, "sentiment": self.sentiment}
        if self.generator is not None:
            out["generator"] = self.generator
        return out

    def warm(self) -> threading.Thread:
        """Load every model in a background thread (failures are recorded, not raised)."""
        def run() -> None:
            for s in self.slots().values():
                try:
                    s.get()
                except ModelUnavailable:
                    pass
        thread = threading.Thread(target=run, name="ai-warmup", daemon=True)
        thread.start()
        return thread

    @property
    def degraded(self) -> bool:
        return any(s.state == "failed" for s in self.slots().values())

    def status(self) -> dict[str, Any]:
        out = {name: s.status() for name, s in self.slots().items()}
        if self.generator is None:
            out["generator"] = {"name": "template", "state": "ready"}
        return out


_MODELS: dict[tuple[Any, ...], AiModels] = {}
_LOCK = threading.Lock()


def models_for(settings: Settings) -> AiModels:
    key = (settings.ai_embedding_model, settings.ai_sentiment_model, settings.ai_generator,
           str(settings.data_dir))
    with _LOCK:
        found = _MODELS.get(key)
        if found is None:
            found = _MODELS[key] = AiModels(settings)
        return found
