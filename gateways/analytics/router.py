"""`/analytics`: PCR trends, volatility surface, max pain, OHLC bars, OI build-up.

Everything is read from what the processors stored (`chain_analytics`, `vol_surfaces`,
`ohlc_bars` in MongoDB; `latest:*` in Redis); nothing is recomputed from raw chains per
call. Every route needs an access token.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

import orjson
from fastapi import APIRouter, Depends, Path, Query

from gateways.analytics.compute import combined_pcr, max_pain_row, oi_buildup_row
from gateways.analytics.models import MaxPain, OhlcSeries, OiBuildup, PcrTrends
from gateways.common.deps import Resources, ResourcesDep, current_user
from gateways.common.errors import DATA_ERRORS, invalid
from gateways.common.jsonio import JSONBytes, json_response, time_range, utc_param
from gateways.common.market import (PRODUCT_PATTERN, SYMBOL_PATTERN, MarketRepository, in_thread,
                                    latest_of, latest_or_at, product_of_symbol)
from schemas.records import VolSurface

ProductPath = Annotated[str, Path(pattern=PRODUCT_PATTERN, examples=["NIFTY"])]
Start = Annotated[dt.datetime | None, Query(description="ISO-8601; naive means UTC")]
End = Annotated[dt.datetime | None, Query(description="ISO-8601; naive means UTC")]
Limit = Annotated[int, Query(ge=1, le=10_000)]
_PCR_FIELDS = {f: 1 for f in ("expiry", "timestamp", "spot_price", "pcr_oi", "pcr_volume",
                              "total_call_oi", "total_put_oi")}


async def _expiries(resources: Resources, product: str) -> list[str]:
    listed = await latest_of(resources).expiries(product)
    if listed:
        return listed
    return await in_thread(MarketRepository(resources.db).distinct, "chain_analytics", "expiry",
                           {"product": product})


def analytics_router() -> APIRouter:
    router = APIRouter(prefix="/analytics", tags=["analytics"], dependencies=[Depends(current_user)],
                       responses=DATA_ERRORS)

    @router.get("/pcr_trends/{product}", response_model=PcrTrends, response_class=JSONBytes)
    async def pcr_trends(product: ProductPath, resources: ResourcesDep, expiry: dt.date | None = None,
                         start: Start = None, end: End = None, limit: Limit = 1000) -> JSONBytes:
        """Put/call ratios (open interest and volume) over time, for one expiry or all."""
        bounds = time_range(start, end)
        await latest_of(resources).require_product(product)
        match = {"product": product} | ({"expiry": expiry.isoformat()} if expiry else {})
        points = await in_thread(MarketRepository(resources.db).history, "chain_analytics", match,
                                 bounds, limit, projection=_PCR_FIELDS | {"_id": 0})
        return json_response({"product": product, "expiry": expiry, "count": len(points),
                              "points": points, "combined": combined_pcr(points)})

    @router.get("/volatility_surface/{product}", response_model=VolSurface, response_class=JSONBytes)
    async def volatility_surface(product: ProductPath, resources: ResourcesDep,
                                 at: Annotated[dt.datetime | None, Query(
                                     description="the surface as it was at this time")] = None) -> JSONBytes:
        """Implied volatility by expiry and strike: the latest surface, or the last at or before `at`."""
        return JSONBytes(await latest_or_at(
            resources, product, f"latest:vol_surface:{product}", "vol_surfaces", {"product": product},
            utc_param(at, "at"), f"volatility surface for {product}"))

    @router.get("/max_pain/{product}", response_model=MaxPain, response_class=JSONBytes)
    async def max_pain(product: ProductPath, resources: ResourcesDep) -> JSONBytes:
        """The max-pain strike of every listed expiry, from its latest chain analytics."""
        latest = latest_of(resources)
        await latest.require_product(product)
        expiries = await _expiries(resources, product)
        cached = await latest.mget([f"latest:analytics:{product}:{e}" for e in expiries])
        repo = MarketRepository(resources.db)
        rows = []
        for expiry, raw in zip(expiries, cached):
            doc = orjson.loads(raw) if raw is not None else await in_thread(
                repo.latest, "chain_analytics", {"product": product, "expiry": expiry})
            if doc is not None:
                rows.append(max_pain_row(doc))
        return json_response({"product": product, "expiries": rows})

    @router.get("/ohlc/{product}", response_model=OhlcSeries, response_class=JSONBytes)
    async def ohlc(product: ProductPath, resources: ResourcesDep,
                   interval: Literal["1m", "5m", "15m"] = "1m",
                   symbol: Annotated[str | None, Query(pattern=SYMBOL_PATTERN, max_length=64,
                                                       description="an option of the product (bars "
                                                                   "of the option instead of the underlying)")] = None,
                   start: Start = None, end: End = None, limit: Limit = 500) -> JSONBytes:
        """Event-time OHLC bars whose window starts in [start, end]: newest `limit`, oldest first."""
        bounds = time_range(start, end)
        if symbol is not None and product_of_symbol(symbol) != product:
            raise invalid(("query", "symbol"), f"symbol {symbol} is not an option on {product}", symbol)
        await latest_of(resources).require_product(product)
        bars = await in_thread(MarketRepository(resources.db).history, "ohlc_bars",
                               {"product": product, "interval": interval, "symbol": symbol}, bounds,
                               limit, time_field="start_time")
        return json_response({"product": product, "symbol": symbol, "interval": interval,
                              "count": len(bars), "bars": bars})

    @router.get("/oi_buildup/{product}", response_model=OiBuildup, response_class=JSONBytes)
    async def oi_buildup(product: ProductPath, resources: ResourcesDep, expiry: dt.date | None = None,
                         start: Annotated[dt.datetime | None, Query(
                             description="baseline: the first snapshot at or after this time "
                                         "(default: one hour before the latest)")] = None) -> JSONBytes:
        """Open-interest change per expiry between a baseline snapshot and the latest one."""
        since = utc_param(start, "start")
        await latest_of(resources).require_product(product)
        expiries = [expiry.isoformat()] if expiry else await _expiries(resources, product)
        rows = await in_thread(_buildup, MarketRepository(resources.db), product, expiries, since)
        return json_response({"product": product, "expiries": rows})

    return router


def _buildup(repo: MarketRepository, product: str, expiries: list[str], since: dt.datetime | None) -> list[dict]:
    rows = []
    for expiry in expiries:
        match = {"product": product, "expiry": expiry}
        last = repo.latest("chain_analytics", match)
        if last is None:
            continue
        base = repo.earliest("chain_analytics", match, since or last["timestamp"] - dt.timedelta(hours=1))
        if base is None or base["timestamp"] > last["timestamp"]:
            base = last
        rows.append(oi_buildup_row(base, last))
    return rows
