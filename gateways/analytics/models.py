"""Response models of `/analytics`."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from schemas.records import Expiry, MaybePrice, OhlcBar, Timestamp


class PcrPoint(BaseModel):
    expiry: Expiry
    timestamp: Timestamp
    spot_price: float
    pcr_oi: MaybePrice
    pcr_volume: MaybePrice
    total_call_oi: int
    total_put_oi: int


class PcrCombined(BaseModel):
    timestamp: Timestamp
    pcr_oi: float | None = Field(description="put OI / call OI summed over the expiries of the snapshot")
    total_call_oi: int
    total_put_oi: int
    expiries: int


class PcrTrends(BaseModel):
    product: str
    expiry: Expiry | None = Field(description="the expiry asked for; null: all expiries")
    count: int
    points: list[PcrPoint] = Field(description="per expiry and snapshot, oldest first")
    combined: list[PcrCombined] = Field(description="all expiries of each snapshot together")


class MaxPainExpiry(BaseModel):
    expiry: Expiry
    timestamp: Timestamp
    max_pain_strike: float
    spot_price: float
    distance: float = Field(description="max_pain_strike - spot_price")
    distance_pct: float = Field(description="100 * distance / spot_price")


class MaxPain(BaseModel):
    product: str
    expiries: list[MaxPainExpiry]


class OhlcSeries(BaseModel):
    product: str
    symbol: str | None
    interval: Literal["1m", "5m", "15m"]
    count: int
    bars: list[OhlcBar] = Field(description="the newest `limit` bars in range, oldest first; "
                                            "`final: false` marks a window still open")


Signal = Literal["long_buildup", "short_buildup", "short_covering", "long_unwinding", "neutral"]


class OiBuildupExpiry(BaseModel):
    expiry: Expiry
    since: Timestamp = Field(description="time of the baseline snapshot")
    timestamp: Timestamp = Field(description="time of the latest snapshot")
    spot_price: float
    spot_change: float
    total_call_oi: int
    total_put_oi: int
    call_oi_change: int
    put_oi_change: int
    call_buildup_otm: int
    put_buildup_otm: int
    signal: Signal = Field(description="price and total open interest moves: up/up long build-up, "
                                       "down/up short build-up, up/down short covering, "
                                       "down/down long unwinding")


class OiBuildup(BaseModel):
    product: str
    expiries: list[OiBuildupExpiry]
