"""`GET /api/v1/dashboard/streams`: the event bus as `payctl health` sees it, for the Streams page.

The figures come from the same readers (`paystream.streaminfo`: `bus_snapshot` and the outbox
backlog): each consumer group's lag, pending count, oldest pending age and live consumers, each
notifier reader's lag and heartbeat, the dead letters per stream, each summed over the stream's
shards (`paystream.shards`). They are platform-wide counts: no
merchant's data is in them, and no host names or process ids are shown. Redis or PostgreSQL being
unreachable is part of the answer (`available: false` for that part), never an error page.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
from aiohttp import web
from redis.exceptions import RedisError

from paystream.db import DATABASE_UNAVAILABLE_ERRORS
from paystream.logging import get_logger
from paystream.redis import REDIS_UNAVAILABLE_ERRORS
from paystream.streaminfo import (
    BusSnapshot,
    bus_snapshot,
    bus_streams,
    entry_age_s,
    outbox_backlog,
    summed_over_shards,
)
from paystream.web import POOL, REDIS, json_response
from paystream_api.auth import authenticate
from paystream_api.keys import SETTINGS

log = get_logger(__name__)

READ_TIMEOUT_S = 3.0
_BUS_READ_FAILURES: tuple[type[BaseException], ...] = (*REDIS_UNAVAILABLE_ERRORS, RedisError, TimeoutError)
_OUTBOX_READ_FAILURES: tuple[type[BaseException], ...] = (
    *DATABASE_UNAVAILABLE_ERRORS,
    asyncpg.PostgresError,
    TimeoutError,
)
LAG_CAP = 10_000


def bus_resource(snapshot: BusSnapshot) -> dict[str, Any]:
    groups = []
    for group, members in zip(snapshot.groups, snapshot.members, strict=True):
        groups.append(
            {
                "stream": group.stream,
                "group": group.group,
                "lag": group.lag,
                "lag_capped": group.lag_capped,
                "pending": group.pending,
                "oldest_pending_age_s": entry_age_s(group.oldest_pending_id, snapshot.now_ms),
                "consumers": len(members),
                "live_consumers": sum(1 for member in members if member.live),
            }
        )
    readers = [
        {
            "stream": reader.stream,
            "reader": f"notifier {index}",
            "live": reader.live,
            "lag": reader.lag,
            "lag_capped": reader.lag_capped,
            "last_beat_s": round(reader.heartbeat.beat_age_ms / 1000, 1),
        }
        for index, reader in enumerate(snapshot.readers, start=1)
    ]
    return {
        "available": True,
        "streams": [{"stream": info.stream, "length": info.length} for info in snapshot.streams],
        "groups": groups,
        "readers": readers,
        "dead_letters": snapshot.dead_letters,
    }


async def streams_status(request: web.Request) -> web.Response:
    await authenticate(request)
    body: dict[str, Any] = {}
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            streams = bus_streams(request.app[SETTINGS].common.streams)
            snapshot = await bus_snapshot(request.app[REDIS], streams, lag_cap=LAG_CAP)
            body["bus"] = bus_resource(summed_over_shards(snapshot))
    except _BUS_READ_FAILURES as exc:
        log.warning("dashboard.bus_read_failed", error=str(exc) or type(exc).__name__)
        body["bus"] = {"available": False}
    try:
        async with asyncio.timeout(READ_TIMEOUT_S):
            backlog = await outbox_backlog(request.app[POOL], cap=LAG_CAP)
        body["outbox"] = {
            "available": True,
            "unpublished": backlog.unpublished,
            "capped": backlog.capped,
            "oldest_age_s": round(backlog.oldest_age_s, 3),
        }
    except _OUTBOX_READ_FAILURES as exc:
        log.warning("dashboard.outbox_read_failed", error=str(exc) or type(exc).__name__)
        body["outbox"] = {"available": False}
    return json_response(body)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/dashboard/streams", streams_status)
