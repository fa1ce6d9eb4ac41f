"""`/data`: products, expiries, underlying and option history, chains (latest or `?at=`).

Latest values come from Redis as the sinks stored them (sent without parsing); history and
`?at=` come from MongoDB. Every route needs an access token.
"""
from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query

from gateways.common.deps import ResourcesDep, current_user
from gateways.common.errors import DATA_ERRORS
from gateways.common.jsonio import JSONBytes, json_response, time_range, utc_param
from gateways.common.market import (PRODUCT_PATTERN, SYMBOL_PATTERN, MarketRepository, in_thread,
                                    latest_of, latest_or_at, product_of_symbol)
from gateways.storage.models import ExpiryList, OptionHistory, ProductList, UnderlyingHistory
from schemas.records import OptionChain

ProductPath = Annotated[str, Path(pattern=PRODUCT_PATTERN, examples=["NIFTY"])]
Start = Annotated[dt.datetime | None, Query(description="ISO-8601; naive means UTC")]
End = Annotated[dt.datetime | None, Query(description="ISO-8601; naive means UTC")]
Limit = Annotated[int, Query(ge=1, le=10_000)]


def storage_router() -> APIRouter:
    router = APIRouter(prefix="/data", tags=["data"], dependencies=[Depends(current_user)],
                       responses=DATA_ERRORS)

    @router.get("/products", response_model=ProductList)
    async def products(resources: ResourcesDep) -> ProductList:
        return ProductList(products=sorted(await latest_of(resources).products()))

    @router.get("/expiries/{product}", response_model=ExpiryList)
    async def expiries(product: ProductPath, resources: ResourcesDep) -> ExpiryList:
        latest = latest_of(resources)
        await latest.require_product(product)
        listed = await latest.expiries(product)
        if not listed:  # Redis empty or down: what MongoDB has seen
            listed = await in_thread(MarketRepository(resources.db).distinct, "option_chains", "expiry",
                                     {"product": product})
        return ExpiryList(product=product, expiries=listed)

    @router.get("/underlying/{product}", response_model=UnderlyingHistory, response_class=JSONBytes)
    async def underlying(product: ProductPath, resources: ResourcesDep, start: Start = None,
                         end: End = None, limit: Limit = 1000) -> JSONBytes:
        """Underlying ticks of `product` in [start, end]: the newest `limit`, oldest first."""
        bounds = time_range(start, end)
        await latest_of(resources).require_product(product)
        ticks = await in_thread(MarketRepository(resources.db).history, "underlying_ticks",
                                {"product": product}, bounds, limit)
        return json_response({"product": product, "count": len(ticks), "ticks": ticks})

    @router.get("/options/{symbol}", response_model=OptionHistory, response_class=JSONBytes)
    async def options(resources: ResourcesDep,
                      symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN, max_length=64,
                                                  examples=["NIFTY20261126C24000"])],
                      start: Start = None, end: End = None, limit: Limit = 100) -> JSONBytes:
        """Quotes of one option (`{product}{YYYYMMDD}{C|P}{strike}`): newest `limit`, oldest first."""
        bounds = time_range(start, end)
        await latest_of(resources).require_product(product_of_symbol(symbol))
        quotes = await in_thread(MarketRepository(resources.db).history, "option_quotes",
                                 {"symbol": symbol}, bounds, limit)
        return json_response({"symbol": symbol, "count": len(quotes), "quotes": quotes})

    @router.get("/chain/{product}/{expiry}", response_model=OptionChain, response_class=JSONBytes)
    async def chain(product: ProductPath, expiry: dt.date, resources: ResourcesDep,
                    at: Annotated[dt.datetime | None, Query(
                        description="the chain as it was at this time (ISO-8601) instead of the latest")] = None
                    ) -> JSONBytes:
        """The latest chain snapshot of one expiry, or the last one at or before `at`."""
        return JSONBytes(await latest_or_at(
            resources, product, f"latest:chain:{product}:{expiry.isoformat()}", "option_chains",
            {"product": product, "expiry": expiry.isoformat()}, utc_param(at, "at"),
            f"{product} chain for expiry {expiry.isoformat()}"))

    return router
