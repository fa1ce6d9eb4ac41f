"""The live web dashboard served by the API gateway (see router.py)."""
from gateways.dashboard.router import dashboard_router

__all__ = ["dashboard_router"]
