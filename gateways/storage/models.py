"""Response models of `/data` (the records themselves are the published schemas)."""
from __future__ import annotations

from pydantic import BaseModel, Field

from schemas.records import OptionQuote, UnderlyingTick


class ProductList(BaseModel):
    products: list[str] = Field(description="configured products and every product the sinks have seen")


class ExpiryList(BaseModel):
    product: str
    expiries: list[str] = Field(description="listed expiries, YYYY-MM-DD, soonest first")


class UnderlyingHistory(BaseModel):
    product: str
    count: int
    ticks: list[UnderlyingTick] = Field(description="the newest `limit` ticks in range, oldest first")


class OptionHistory(BaseModel):
    symbol: str
    count: int
    quotes: list[OptionQuote] = Field(description="the newest `limit` quotes in range, oldest first")
