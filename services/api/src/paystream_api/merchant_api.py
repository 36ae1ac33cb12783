"""Orders, payments, captures, refunds, idempotency keys and the test jobs status (issue 3)."""

from __future__ import annotations

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    """Registers this feature's routes (filled in by its issue)."""
