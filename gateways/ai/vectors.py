"""Document vectors in Redis, searched by brute force in numpy (Redis 6.2 has no vector
search; a few thousand 384-d vectors score in well under a millisecond).

Keys (all under `ai:v1:`):
- `doc:{id}` hash: `vec` (float32 bytes, unit length), `text`, `kind` (news | analytics),
  `product` ("*" = market-wide), `source`, `timestamp` (ISO-8601 Z), `sentiment`, `label`
- `docs` set of ids; `news:{product}` sorted set of news ids by epoch seconds
- `version` counter bumped on every write (invalidates each process's matrix cache)
- `model` the embedding model the vectors came from (another model → the index is rebuilt)
- `sync:news` watermark of the MongoDB `news` sync (ISO-8601 Z)
"""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
from redis import Redis

PREFIX = "ai:v1:"
DOCS, VERSION, MODEL, NEWS_SYNC = (PREFIX + k for k in ("docs", "version", "model", "sync:news"))
_FIELDS = ("text", "kind", "product", "source", "timestamp", "sentiment", "label")


def doc_key(doc_id: str) -> str:
    return f"{PREFIX}doc:{doc_id}"


def news_key(product: str | None) -> str:
    return f"{PREFIX}news:{product or '*'}"


@dataclass
class Doc:
    id: str
    text: str
    kind: str
    product: str
    source: str
    timestamp: str
    epoch: float = 0.0
    sentiment: float | None = None
    label: str | None = None

    def fields(self) -> dict[str, Any]:
        out = {"text": self.text, "kind": self.kind, "product": self.product, "source": self.source,
               "timestamp": self.timestamp}
        if self.sentiment is not None:
            out |= {"sentiment": repr(float(self.sentiment)), "label": self.label or ""}
        return out


def _decode(doc_id: str, raw: list[bytes | None]) -> Doc | None:
    if raw[0] is None:
        return None
    v = dict(zip(_FIELDS, (r.decode() if r is not None else None for r in raw)))
    return Doc(doc_id, v["text"] or "", v["kind"] or "", v["product"] or "*", v["source"] or "",
               v["timestamp"] or "", sentiment=float(v["sentiment"]) if v["sentiment"] else None,
               label=v["label"] or None)


@dataclass
class _Matrix:
    version: int
    ids: list[str]
    products: np.ndarray
    vectors: np.ndarray


class VectorStore:
    """One per process and Redis database; the loaded matrix is cached until `version` moves."""

    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._cache: _Matrix | None = None
        self._lock = threading.Lock()

    # -- writes -----------------------------------------------------------------------
    def ensure_model(self, name: str) -> None:
        """Vectors of another embedding model are meaningless here: drop them (and resync)."""
        current = self.redis.get(MODEL)
        if current is not None and current.decode() == name:
            return
        keys = [k for k in self.redis.scan_iter(match=PREFIX + "*", count=1000)]
        for i in range(0, len(keys), 500):
            self.redis.delete(*keys[i:i + 500])
        self.redis.set(MODEL, name)

    def existing(self, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        pipe = self.redis.pipeline(transaction=False)
        for doc_id in ids:
            pipe.exists(doc_key(doc_id))
        return {doc_id for doc_id, found in zip(ids, pipe.execute()) if found}

    def put(self, docs: list[Doc], vectors: np.ndarray) -> None:
        if not docs:
            return
        pipe = self.redis.pipeline(transaction=True)
        for doc, vec in zip(docs, vectors):
            pipe.hset(doc_key(doc.id), mapping=doc.fields() | {"vec": vec.astype(np.float32).tobytes()})
            pipe.sadd(DOCS, doc.id)
            if doc.kind == "news":
                pipe.zadd(news_key(doc.product), {doc.id: doc.epoch})
        pipe.incr(VERSION)
        pipe.execute()

    def get(self, ids: Iterable[str]) -> list[Doc]:
        ids = list(ids)
        pipe = self.redis.pipeline(transaction=False)
        for doc_id in ids:
            pipe.hmget(doc_key(doc_id), _FIELDS)
        return [d for d in (_decode(i, raw) for i, raw in zip(ids, pipe.execute())) if d is not None]

    def news_ids(self, product: str, limit: int) -> list[str]:
        """The newest `limit` news ids of a product, newest first."""
        return [i.decode() for i in self.redis.zrevrange(news_key(product), 0, limit - 1)]

    # -- search ---------------------------------------------------------------------------
    def _matrix(self) -> _Matrix:
        version = int(self.redis.get(VERSION) or 0)
        with self._lock:
            if self._cache is not None and self._cache.version == version:
                return self._cache
            ids = sorted(i.decode() for i in self.redis.smembers(DOCS))
            pipe = self.redis.pipeline(transaction=False)
            for doc_id in ids:
                pipe.hmget(doc_key(doc_id), ("vec", "product"))
            rows = [(i, vec, product) for i, (vec, product) in zip(ids, pipe.execute()) if vec is not None]
            dim = len(rows[0][1]) // 4 if rows else 0
            vectors = (np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
                       if rows else np.zeros((0, 0), dtype=np.float32))
            self._cache = _Matrix(version, [r[0] for r in rows],
                                  np.array([(r[2] or b"*").decode() for r in rows], dtype=str), vectors)
            return self._cache

    def search(self, query: np.ndarray, k: int, product: str | None = None) -> list[tuple[Doc, float]]:
        """Top-k documents by cosine similarity; with `product`, its documents and market-wide ones."""
        matrix = self._matrix()
        if not matrix.ids or matrix.vectors.shape[1] != query.shape[-1]:
            return []
        scores = matrix.vectors @ query.astype(np.float32).reshape(-1)
        if product is not None:
            scores = np.where((matrix.products == product) | (matrix.products == "*"), scores, -np.inf)
        k = min(k, int(np.isfinite(scores).sum()))
        if k <= 0:
            return []
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        docs = {d.id: d for d in self.get(matrix.ids[i] for i in top)}
        return [(docs[matrix.ids[i]], float(scores[i])) for i in top if matrix.ids[i] in docs]
