"""Sentiment of headlines and notes, scored by a real model.

Default: a multinomial logistic-regression head on the MiniLM sentence embeddings, trained
on the labelled financial headlines in `data/headlines.csv` (negative / neutral / positive).
It is trained at first use and cached under the data dir, keyed by the data and the
embedding model; the held-out accuracy (stratified 25% split, fixed seed) is measured in
the same step and reported with every answer. `DELTASTREAM_AI_SENTIMENT_MODEL` points at a
local transformers text-classification directory instead (e.g. a FinBERT checkpoint).

Score = P(positive) - P(negative), in [-1, 1].
"""
from __future__ import annotations

import csv
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from gateways.ai.embedding import Embedder

HEADLINES = Path(__file__).parent / "data" / "headlines.csv"
LABELS = ("negative", "neutral", "positive")
HELD_OUT = 0.25
SEED = 0


@dataclass(frozen=True)
class Scored:
    label: str
    score: float  # P(positive) - P(negative)
    probabilities: dict[str, float]


def load_headlines(path: Path = HEADLINES) -> tuple[list[str], np.ndarray]:
    with path.open(newline="", encoding="utf-8") as fh:
        rows = [(r["text"].strip(), LABELS.index(r["label"].strip())) for r in csv.DictReader(fh)]
    return [t for t, _ in rows], np.array([y for _, y in rows], dtype=np.int64)


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=4.0, max_iter=2000, random_state=SEED).fit(x, y)
    return clf.coef_.astype(np.float32), clf.intercept_.astype(np.float32)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def train_head(embedder: Embedder, path: Path = HEADLINES) -> dict[str, np.ndarray]:
    """Held-out accuracy of a head trained on 75% of the headlines, then the head trained on all."""
    from sklearn.model_selection import train_test_split

    texts, y = load_headlines(path)
    x = embedder.encode(texts)
    idx_train, idx_test = train_test_split(np.arange(len(y)), test_size=HELD_OUT, random_state=SEED,
                                           stratify=y)
    w, b = _fit(x[idx_train], y[idx_train])
    predicted = (x[idx_test] @ w.T + b).argmax(axis=1)
    accuracy = float((predicted == y[idx_test]).mean())
    w, b = _fit(x, y)
    return {"coef": w, "intercept": b, "heldout_accuracy": np.float64(accuracy),
            "n_train": np.int64(len(idx_train)), "n_test": np.int64(len(idx_test)),
            "n_total": np.int64(len(y))}


class HeadSentiment:
    """The MiniLM embedding + logistic head classifier."""

    def __init__(self, embedder: Embedder, cache_dir: Path, path: Path = HEADLINES) -> None:
        self.embedder = embedder
        digest = hashlib.sha1(path.read_bytes() + embedder.name.encode()).hexdigest()[:12]
        cache = cache_dir / f"sentiment-head-{digest}.npz"
        if cache.exists():
            head = dict(np.load(cache))
        else:
            head = train_head(embedder, path)
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_suffix(f".{threading.get_ident()}.tmp.npz")
            np.savez(tmp, **head)
            tmp.replace(cache)  # atomic: concurrent processes never read half a file
        self.coef, self.intercept = head["coef"], head["intercept"]
        self.name = f"logistic head on {embedder.name} ({path.name})"
        self.info = {"heldout_accuracy": round(float(head["heldout_accuracy"]), 4),
                     "train_size": int(head["n_train"]), "test_size": int(head["n_test"]),
                     "labels": list(LABELS)}

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        return _softmax(self.embedder.encode(texts) @ self.coef.T + self.intercept)

    def score(self, texts: Sequence[str]) -> list[Scored]:
        return [_scored(p) for p in self.probabilities(texts)]


class TransformersSentiment:
    """Any local transformers sequence-classification model whose labels name positive and
    negative (and optionally neutral), e.g. FinBERT."""

    def __init__(self, model_dir: str) -> None:
        from transformers import pipeline

        if not Path(model_dir).is_dir():
            raise FileNotFoundError(f"no model directory at {model_dir}")
        self.pipe = pipeline("text-classification", model=model_dir, tokenizer=model_dir, top_k=None,
                             device=-1)
        names = {i: str(n).lower() for i, n in self.pipe.model.config.id2label.items()}
        self.mapping = {}
        for raw in names.values():
            for label in LABELS:
                if label[:3] in raw:
                    self.mapping[raw] = label
        if not {"positive", "negative"} <= set(self.mapping.values()):
            raise ValueError(f"labels {sorted(names.values())} do not name positive and negative")
        self.name = model_dir
        self.info = {"labels": sorted(set(self.mapping.values()))}
        self._lock = threading.Lock()

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        with self._lock:
            outputs = self.pipe(list(texts), truncation=True)
        out = np.zeros((len(texts), len(LABELS)), dtype=np.float64)
        for row, scores in zip(out, outputs):
            for item in scores:
                label = self.mapping.get(str(item["label"]).lower())
                if label is not None:
                    row[LABELS.index(label)] += item["score"]
        return out

    def score(self, texts: Sequence[str]) -> list[Scored]:
        return [_scored(p) for p in self.probabilities(texts)]


def _scored(p: np.ndarray) -> Scored:
    probs = {label: round(float(v), 4) for label, v in zip(LABELS, p)}
    return Scored(LABELS[int(np.argmax(p))], round(float(p[2] - p[0]), 4), probs)
