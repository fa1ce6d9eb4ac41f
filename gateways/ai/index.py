"""Keeps the vector store in step with the stores: news and notes (MongoDB `news`, written by
the MongoDB sink from `market.news`, or indexed at once by `POST /ai/news`) and one analytics
summary per product (the template pulse of its latest chain analytics)."""
from __future__ import annotations

import threading
from typing import Any

from pymongo import ASCENDING
from pymongo.database import Database
from redis import Redis

from deltastream.settings import Settings
from gateways.ai.engines import AiModels
from gateways.ai.pulse import _parse_ts, latest_analytics, pulse_facts, template_pulse
from gateways.ai.vectors import NEWS_SYNC, Doc, VectorStore
from schemas.records import iso_z

SYNC_BATCH = 500
SYNC_ROUNDS = 20  # at most 10k news documents embedded per request; the rest next time
SENTIMENT_CHARS = 1000


def news_text(item: dict[str, Any]) -> str:
    body = (item.get("body") or "").strip()
    return f"{item['headline'].strip()}\n{body}" if body else item["headline"].strip()


class Indexer:
    def __init__(self, settings: Settings, models: AiModels, redis: Redis, db: Database) -> None:
        self.settings, self.models, self.db = settings, models, db
        self.store = VectorStore(redis)
        self._lock = threading.Lock()
        self._model_checked = False

    def _ready(self):
        embedder = self.models.embedder.get()
        if not self._model_checked:
            self.store.ensure_model(embedder.name)
            self._model_checked = True
        return embedder

    def index_news(self, items: list[dict[str, Any]]) -> list[Doc]:
        """Embed and score news items (NewsItem dicts / `news` documents) not indexed yet."""
        embedder = self._ready()
        sentiment = self.models.sentiment.get()
        ids = [str(i.get("event_id") or i.get("_id")) for i in items]
        known = self.store.existing(ids)
        fresh = [(doc_id, i) for doc_id, i in zip(ids, items) if doc_id not in known]
        if not fresh:
            return []
        texts = [news_text(i) for _, i in fresh]
        scores = sentiment.score([t[:SENTIMENT_CHARS] for t in texts])
        docs = []
        for (doc_id, item), text, scored in zip(fresh, texts, scores):
            when = _parse_ts(item["timestamp"])
            docs.append(Doc(doc_id, text, "news", item.get("product") or "*", item.get("source") or "",
                            iso_z(when), when.timestamp(), scored.score, scored.label))
        self.store.put(docs, embedder.encode(texts))
        return docs

    def sync(self) -> None:
        """Index what the stores hold and the vector store lacks (cheap when nothing changed)."""
        with self._lock:
            self._sync_news()
            self._sync_analytics()

    def _sync_news(self) -> None:
        redis = self.store.redis
        for _ in range(SYNC_ROUNDS):
            mark = redis.get(NEWS_SYNC)
            query = {"timestamp": {"$gte": _parse_ts(mark.decode())}} if mark else {}
            batch = list(self.db.news.find(query).sort("timestamp", ASCENDING).limit(SYNC_BATCH))
            if not batch:
                return
            self.index_news(batch)
            newest = iso_z(_parse_ts(batch[-1]["timestamp"]))
            redis.set(NEWS_SYNC, newest)
            if len(batch) < SYNC_BATCH or (mark and mark.decode() == newest):
                # Caught up. (Known limit: more than SYNC_BATCH news items sharing one exact
                # timestamp are indexed only up to the first SYNC_BATCH of them.)
                return

    def _products(self) -> list[str]:
        seen = {p.decode() for p in self.store.redis.smembers("products")}
        return sorted(seen | set(self.settings.products))

    def _sync_analytics(self) -> None:
        embedder = self._ready()
        stale: list[dict[str, Any]] = []
        for product in self._products():
            last = latest_analytics(self.db, self.store.redis, product)
            if last is None:
                continue
            doc_id = f"analytics:{product}"
            held = self.store.get([doc_id])
            if held and held[0].timestamp == iso_z(last["timestamp"]):
                continue
            facts = pulse_facts(self.db, self.store.redis, product)
            if facts is not None:
                stale.append(facts)
        if not stale:
            return
        docs = [Doc(f"analytics:{f['product']}", f"Market pulse (chain analytics): {template_pulse(f)}",
                    "analytics", f["product"], "chain_analytics", f["as_of"], _parse_ts(f["as_of"]).timestamp())
                for f in stale]
        self.store.put(docs, embedder.encode([d.text for d in docs]))
