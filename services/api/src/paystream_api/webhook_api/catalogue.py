"""`GET /api/v1/event-types`: the event catalogue (`paystream.catalogue`), for anyone to read.

It needs no credentials: it describes the platform, not a merchant (like a provider's public API
reference), so integrators, code generators and the dashboard's Docs page read it without a key.
It never changes while a process runs, so it is encoded once and answered from memory.
"""

from __future__ import annotations

from functools import cache

import orjson
from aiohttp import web

from paystream.catalogue import EVENT_CATALOGUE

# Shared caches may keep it for a while; a deploy that changes it is seen within five minutes.
CACHE_CONTROL = "public, max-age=300"


@cache
def catalogue_body() -> bytes:
    """The answer's bytes, built on first use."""
    entries = [entry.to_resource() for entry in EVENT_CATALOGUE.values()]
    return orjson.dumps({"entity": "collection", "count": len(entries), "data": entries})


async def list_event_types(_request: web.Request) -> web.Response:
    return web.Response(
        body=catalogue_body(), content_type="application/json", headers={"Cache-Control": CACHE_CONTROL}
    )
