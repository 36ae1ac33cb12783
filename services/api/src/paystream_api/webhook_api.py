"""Merchant webhook configuration, delivery logs and manual retry (issue 4)."""

from __future__ import annotations

from aiohttp import web


def setup_routes(app: web.Application) -> None:
    """Registers this feature's routes (filled in by its issue)."""
