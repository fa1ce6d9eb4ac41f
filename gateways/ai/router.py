"""`/ai`: market pulse, news sentiment, news ingestion and retrieval-augmented answers.

Every route needs an access token. A route whose model could not be loaded answers 503 with
the reason (and `/health` reports `degraded`); the market pulse needs no model.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query

from gateways.ai.engines import AiModels, models_for
from gateways.ai.generation import repeats_itself, ungrounded_numbers
from gateways.ai.index import Indexer
from gateways.ai.models import (AiHealth, Answer, AskIn, MarketPulse, ModelInfo, NewsAccepted, NewsIn,
                                ScoredText, SentimentSummary, Source)
from gateways.ai.news import NewsPublisher, NewsUnavailable
from gateways.ai.pulse import fact_lines, pulse_facts, template_pulse
from gateways.ai.slots import ModelUnavailable
from gateways.ai.vectors import Doc
from gateways.common.deps import Resources, ResourcesDep, current_user
from gateways.common.errors import DATA_ERRORS, responses
from gateways.common.market import PRODUCT_PATTERN, in_thread, latest_of
from schemas.records import NewsItem

ProductPath = Annotated[str, Path(pattern=PRODUCT_PATTERN, examples=["NIFTY"])]
NEUTRAL_BAND = 0.15
EXAMPLES = 3

PULSE_SYSTEM = ("You are a concise options-market analyst. Write two or three sentences using only the "
                "facts given. Do not invent numbers, dates or events.")
ASK_SYSTEM = ("You answer questions about markets using only the numbered sources given. Cite the "
              "sources you use as [1], [2]. If the sources do not answer the question, say so.")


class AiContext:
    """Per app: the models, the vector index and the news publisher (closed with the app)."""

    def __init__(self, resources: Resources) -> None:
        self.models: AiModels = models_for(resources.settings)
        self.indexer = Indexer(resources.settings, self.models, resources.redis, resources.db)
        self.publisher = NewsPublisher(resources.settings)

    def close(self) -> None:
        self.publisher.close()


def ai_context(resources: Resources) -> AiContext:
    ctx = resources.extras.get("ai")
    if ctx is None:
        ctx = resources.extras["ai"] = AiContext(resources)
        if resources.settings.ai_preload:
            ctx.models.warm()
    return ctx


def health_of(resources: Resources, service: str = "ai") -> AiHealth:
    models = ai_context(resources).models
    return AiHealth(status="degraded" if models.degraded else "healthy", service=service,
                    models=models.status())


def _unavailable(exc: Exception) -> HTTPException:
    return HTTPException(503, str(exc), headers={"Retry-After": "30"})


def _too_long(what: str, length: int, limit: int) -> HTTPException:
    return HTTPException(413, f"{what} has {length} characters; the limit is {limit}")


def _scored(doc: Doc) -> ScoredText:
    return ScoredText(id=doc.id, text=doc.text, source=doc.source, timestamp=doc.timestamp,
                      score=doc.sentiment if doc.sentiment is not None else 0.0,
                      label=doc.label or "neutral")  # type: ignore[arg-type]


def _model_info(ctx: AiContext) -> ModelInfo:
    info = ctx.models.sentiment.status()
    return ModelInfo(name=info["name"], heldout_accuracy=info.get("heldout_accuracy"))


def summarise(product: str, docs: list[Doc], model: ModelInfo) -> SentimentSummary:
    """Counts, average score and the most positive / negative examples of scored news."""
    scored = [d for d in docs if d.sentiment is not None]
    counts = {"positive": 0, "neutral": 0, "negative": 0}
    for d in scored:
        counts[d.label or "neutral"] += 1
    avg = sum(d.sentiment for d in scored) / len(scored) if scored else None  # type: ignore[misc]
    label = None if avg is None else "neutral" if abs(avg) < NEUTRAL_BAND else (
        "positive" if avg > 0 else "negative")
    by_score = sorted(scored, key=lambda d: d.sentiment)  # type: ignore[arg-type, return-value]
    examples = {"positive": [_scored(d) for d in reversed(by_score[-EXAMPLES:]) if d.label == "positive"],
                "negative": [_scored(d) for d in by_score[:EXAMPLES] if d.label == "negative"]}
    stamps = sorted(d.timestamp for d in scored)
    return SentimentSummary(product=product, count=len(scored), average_score=avg, label=label,
                            counts=counts, examples=examples, oldest=stamps[0] if stamps else None,
                            newest=stamps[-1] if stamps else None, model=model)


def template_answer(hits: list[tuple[Doc, float]]) -> str:
    if not hits:
        return "No stored news, notes or analytics summaries match the question."
    first = hits[0][0]
    text = f"The closest stored document [1] ({first.kind}, {first.source}, {first.timestamp}) says: {first.text}"
    if len(hits) > 1:
        text += " Also relevant: " + "; ".join(f"[{n}] {d.text[:160]}" for n, (d, _) in enumerate(hits[1:], 2))
    return text


def ai_router() -> APIRouter:
    router = APIRouter(prefix="/ai", tags=["ai"], dependencies=[Depends(current_user)],
                       responses=DATA_ERRORS)

    @router.get("/status", response_model=AiHealth)
    def status(resources: ResourcesDep) -> AiHealth:
        """The models: which are loaded, which failed and why (`degraded`)."""
        return health_of(resources)

    @router.get("/market_pulse/{product}", response_model=MarketPulse)
    async def market_pulse(product: ProductPath, resources: ResourcesDep) -> MarketPulse:
        """A short summary of the latest analytics, with the numbers it used."""
        await latest_of(resources).require_product(product)
        ctx = ai_context(resources)
        facts = await in_thread(pulse_facts, resources.db, resources.redis, product)
        if facts is None:
            raise HTTPException(404, f"no chain analytics stored for {product} yet")
        sources = [f"latest:analytics:{product}:{facts['expiry']}",
                   f"chain_analytics {product} {facts['expiry']} since {facts['since']}"]
        template = template_pulse(facts)
        if ctx.models.generator is None:
            return MarketPulse(product=product, text=template, generator="template", facts=facts,
                               sources=sources)
        lines = fact_lines(facts)
        try:
            generator = ctx.models.generator.get()
            text = await in_thread(generator.generate, PULSE_SYSTEM,
                                   "Facts:\n" + "\n".join(f"- {line}" for line in lines)
                                   + f"\n\nWrite the market pulse for {product}.")
        except ModelUnavailable as exc:
            return MarketPulse(product=product, text=template, generator="template", facts=facts,
                               sources=sources, note=str(exc))
        except Exception as exc:  # noqa: BLE001 - a hosted API or a model failing mid-answer
            return MarketPulse(product=product, text=template, generator="template", facts=facts,
                               sources=sources, note=f"generator failed: {type(exc).__name__}: {exc}"[:300])
        bad = ungrounded_numbers(text, lines, facts.values())
        if bad or not text or repeats_itself(text):
            note = (f"generated text cited numbers not in the facts: {bad[:5]}" if bad else
                    "generated text repeats itself" if text else "generator returned nothing")
            return MarketPulse(product=product, text=template, generator="template", facts=facts,
                               sources=sources, note=note)
        return MarketPulse(product=product, text=text, generator=generator.name, facts=facts, sources=sources)

    @router.get("/sentiment/{product}", response_model=SentimentSummary)
    async def sentiment(product: ProductPath, resources: ResourcesDep,
                        limit: Annotated[int, Query(ge=1, le=5000, description="newest items scored")] = 200
                        ) -> SentimentSummary:
        """Sentiment of the newest news and notes about the product: counts, average, examples."""
        await latest_of(resources).require_product(product)
        ctx = ai_context(resources)
        try:
            await in_thread(ctx.indexer.sync)
            ctx.models.sentiment.get()
        except ModelUnavailable as exc:
            raise _unavailable(exc) from None
        store = ctx.indexer.store
        docs = await in_thread(lambda: store.get(store.news_ids(product, limit)))
        return summarise(product, docs, _model_info(ctx))

    @router.post("/news", response_model=NewsAccepted, status_code=201,
                 responses=responses(400, 404, 413, 503))
    async def post_news(news: NewsIn, resources: ResourcesDep) -> NewsAccepted:
        """Publish a news headline or note to `market.news`; it is embedded and scored at once."""
        limit = resources.settings.ai_max_text_chars
        if news.body is not None and len(news.body) > limit:
            raise _too_long("body", len(news.body), limit)
        if news.product is not None:
            await latest_of(resources).require_product(news.product)
        item = NewsItem(product=news.product, headline=news.headline, body=news.body, source=news.source,
                        timestamp=news.timestamp or dt.datetime.now(dt.timezone.utc))
        ctx = ai_context(resources)
        try:
            await in_thread(ctx.publisher.publish, item)
        except NewsUnavailable as exc:
            raise _unavailable(exc) from None
        try:
            docs = await in_thread(ctx.indexer.index_news, [item.model_dump(mode="json")])
        except ModelUnavailable as exc:
            return NewsAccepted(event_id=item.event_id, topic=ctx.publisher.topic, indexed=False, note=str(exc))
        held = docs or await in_thread(ctx.indexer.store.get, [item.event_id])
        return NewsAccepted(event_id=item.event_id, topic=ctx.publisher.topic, indexed=True,
                            sentiment=_scored(held[0]) if held else None)

    @router.post("/ask", response_model=Answer, responses=responses(400, 404, 413, 503))
    async def ask(body: AskIn, resources: ResourcesDep) -> Answer:
        """Answer from the closest stored news, notes and analytics summaries, citing them."""
        settings = resources.settings
        if len(body.question) > settings.ai_max_text_chars:
            raise _too_long("question", len(body.question), settings.ai_max_text_chars)
        if body.product is not None:
            await latest_of(resources).require_product(body.product)
        ctx = ai_context(resources)
        try:
            await in_thread(ctx.indexer.sync)
            embedder = ctx.models.embedder.get()
            query = await in_thread(embedder.encode, [body.question])
        except ModelUnavailable as exc:
            raise _unavailable(exc) from None
        hits = await in_thread(ctx.indexer.store.search, query[0], body.k or settings.ai_top_k, body.product)
        sources = [Source(ref=n, id=d.id, kind=d.kind, product=d.product, source=d.source,
                          timestamp=d.timestamp, text=d.text, score=round(s, 4))
                   for n, (d, s) in enumerate(hits, 1)]
        answer, generator, note = template_answer(hits), "template (extractive)", None
        if ctx.models.generator is not None and hits:
            generated, note = await _generate_answer(ctx, body.question, hits)
            if generated:
                answer, generator = generated, ctx.models.generator.name
        return Answer(question=body.question, answer=answer, generator=generator, note=note, sources=sources)

    return router


async def _generate_answer(ctx: AiContext, question: str, hits: list[tuple[Doc, float]]) -> tuple[str | None, str | None]:
    numbered = "\n".join(f"[{n}] ({d.kind}, {d.source}, {d.timestamp}) {d.text}" for n, (d, _) in enumerate(hits, 1))
    try:
        generator = ctx.models.generator.get()  # type: ignore[union-attr]
        text = await in_thread(generator.generate, ASK_SYSTEM, f"Sources:\n{numbered}\n\nQuestion: {question}")
    except Exception as exc:  # noqa: BLE001 - fall back to the extractive answer
        return None, f"generator failed: {type(exc).__name__}: {exc}"[:300]
    cited = any(f"[{n}]" in text for n in range(1, len(hits) + 1))
    if not text or not cited or repeats_itself(text):
        reason = "repeats itself" if text and cited else "cited no source"
        return None, f"generated answer {reason}; extractive answer served instead"
    return text, None


__all__ = ["ai_router", "health_of", "ai_context"]
