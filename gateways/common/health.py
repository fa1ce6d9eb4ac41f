"""`GET /health` as every DeltaStream service serves it (DESIGN.md)."""
from __future__ import annotations

from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel


class Health(BaseModel):
    status: Literal["healthy", "degraded"]
    service: str


def health_router(service: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/health", response_model=Health)
    async def health() -> Health:  # async: a plain def would hop to the threadpool
        return Health(status="healthy", service=service)

    return router
