"""Request and response models of `/ai` (the OpenAPI contract)."""
from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from gateways.analytics.models import Signal
from schemas.records import PRODUCT_PATTERN

Label = Literal["negative", "neutral", "positive"]


class PulseFacts(BaseModel):
    """The numbers the pulse cites, exactly as stored (fractions, not percent, unless `_pct`)."""

    product: str
    expiry: str = Field(description="the front expiry: nearest listed expiry with analytics")
    as_of: str = Field(description="timestamp of the latest chain analytics")
    since: str = Field(description="baseline snapshot for the changes (first at or after as_of - 1 h)")
    spot_price: float
    spot_change: float
    spot_change_pct: float | None
    pcr_oi: float | None
    pcr_oi_since: float | None
    pcr_change: float | None
    pcr_trend: Literal["rising", "falling", "flat"] | None
    pcr_volume: float | None
    max_pain_strike: float
    max_pain_distance: float = Field(description="max pain strike - spot")
    max_pain_distance_pct: float
    atm_strike: float
    atm_iv: float | None
    atm_iv_pct: float | None
    atm_straddle_price: float | None
    iv_skew: float | None = Field(description="OTM put IV - OTM call IV")
    total_call_oi: int
    total_put_oi: int
    call_oi_change: int
    put_oi_change: int
    call_buildup_otm: int
    put_buildup_otm: int
    oi_signal: Signal  # the analytics API's OI build-up signal


class MarketPulse(BaseModel):
    product: str
    text: str
    generator: str = Field(description="'template' or the generative model that wrote `text`")
    note: str | None = Field(default=None, description="why a generated text was replaced by the template")
    facts: PulseFacts
    sources: list[str] = Field(description="where the facts were read")


class ModelInfo(BaseModel):
    name: str
    heldout_accuracy: float | None = None


class ScoredText(BaseModel):
    id: str
    text: str
    source: str
    timestamp: str
    score: float = Field(description="P(positive) - P(negative), in [-1, 1]")
    label: Label


class SentimentSummary(BaseModel):
    product: str
    count: int
    average_score: float | None
    label: Label | None = Field(description="overall: the sign of the average score (|avg| < 0.15: neutral)")
    counts: dict[str, int]
    examples: dict[str, list[ScoredText]] = Field(description="most positive / most negative items")
    oldest: str | None
    newest: str | None
    model: ModelInfo


class NewsIn(BaseModel):
    product: str | None = Field(default=None, pattern=PRODUCT_PATTERN,
                                description="the product; omit for market-wide news")
    headline: str = Field(min_length=1, max_length=1000)
    body: str | None = None
    source: str = Field(default="api", min_length=1, max_length=256)
    timestamp: dt.datetime | None = Field(default=None, description="default: now")

    @field_validator("headline")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("headline is blank")
        return v.strip()


class NewsAccepted(BaseModel):
    event_id: str
    topic: str
    indexed: bool = Field(description="embedded and scored now (else at the next sync from MongoDB)")
    sentiment: ScoredText | None = None
    note: str | None = None


class AskIn(BaseModel):
    question: str = Field(min_length=1)
    product: str | None = Field(default=None, pattern=PRODUCT_PATTERN,
                                description="restrict to this product's documents (and market-wide ones)")
    k: int | None = Field(default=None, ge=1, le=20, description="documents to retrieve")

    @field_validator("question")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("question is blank")
        return v.strip()


class Source(BaseModel):
    ref: int = Field(description="the [n] the answer cites")
    id: str
    kind: str
    product: str
    source: str
    timestamp: str
    text: str
    score: float = Field(description="cosine similarity to the question")


class Answer(BaseModel):
    question: str
    answer: str
    generator: str
    note: str | None = None
    sources: list[Source]


class AiHealth(BaseModel):
    status: Literal["healthy", "degraded"]
    service: str
    models: dict[str, Any] = Field(default_factory=dict)
