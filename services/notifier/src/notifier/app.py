"""The notifier: Socket.IO on aiohttp at `/socket.io`, live payment status for frontends.

One process = one aiohttp app with a python-socketio `AsyncServer` (websocket and polling), a stream
reader on `payment:events` with its heartbeat, and `/health` and `/metrics` (which also report this
process's own lag). Run as many as needed behind a load
balancer (sticky sessions for the polling transport, as Socket.IO always requires); each reads the
stream itself and serves its own sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import socketio  # type: ignore[import-untyped]
from aiohttp import web
from redis.exceptions import ResponseError

from notifier import handlers
from notifier.fanout import Hub
from notifier.keys import HUB, SETTINGS, SIO, TRANSPORT_REQUESTS
from notifier.metrics import STREAM_LAG
from notifier.packet_json import OrjsonPackets
from notifier.settings import NotifierSettings
from notifier.transports import TransportRequests, add_socketio_routes
from paystream.logging import get_logger
from paystream.redis import REDIS_UNAVAILABLE_ERRORS
from paystream.web import (
    COMMON_SETTINGS,
    REDIS,
    SERVICE_NAME,
    add_ops_routes,
    background,
    error_middleware,
    stores,
)

log = get_logger(__name__)

STARTUP_DEADLINE_S = 120.0
LAG_READ_TIMEOUT_S = 2.0
# Redis unreachable, or a command refused: the scrape goes on without the figure.
_LAG_READ_FAILURES: tuple[type[BaseException], ...] = (*REDIS_UNAVAILABLE_ERRORS, ResponseError)
# Clients only send small subscribe requests.
MAX_CLIENT_MESSAGE_BYTES = 64 * 1024


async def hub_context(app: web.Application) -> AsyncIterator[None]:
    """Create the hub and position the reader at the stream's end before any socket connects."""
    hub = Hub(app[SIO], app[REDIS], app[SETTINGS])
    app[HUB] = hub
    async with asyncio.timeout(STARTUP_DEADLINE_S):  # then exit, and let the supervisor retry
        for tail in hub.tails:
            await tail.start(asyncio.Event())
    yield


async def read_stream(app: web.Application, stop: asyncio.Event) -> None:
    """Every shard's reader (each loop backs off and carries on by itself, never ends on an error)."""
    await asyncio.gather(*(tail.run(stop) for tail in app[HUB].tails))


async def beat(app: web.Application, stop: asyncio.Event) -> None:
    """Each reader's heartbeat, with its position; the records go when the process stops cleanly."""
    await asyncio.gather(*(tail.heartbeat.run(stop) for tail in app[HUB].tails))


async def measure_lag(app: web.Application) -> None:
    """At scrape time: how far each of this process's readers is behind its shard's end, right now."""
    lags = {}
    try:
        async with asyncio.timeout(LAG_READ_TIMEOUT_S):
            for tail in app[HUB].tails:
                lags[tail.stream], _capped = await tail.lag()
    except _LAG_READ_FAILURES as exc:
        log.warning("metrics.lag_read_failed", error=str(exc) or type(exc).__name__)
        STREAM_LAG.clear()  # no figure rather than a stale one
        return
    for stream, lag in lags.items():
        STREAM_LAG.labels(stream).set(lag)


async def drain_sockets(app: web.Application) -> None:
    """Close whatever sockets are still open, then stop python-socketio's background task.

    By now aiohttp has stopped reading from connections, so clients cannot complete a closing
    handshake: `python -m notifier` drains before that, on the signal (see `shutdown`).
    """
    if HUB in app:
        await app[HUB].drain()
    await app[SIO].shutdown()  # a no-op when no client ever connected


def create_app(settings: NotifierSettings) -> web.Application:
    app = web.Application(middlewares=[error_middleware])
    app[SERVICE_NAME] = "notifier"
    app[SETTINGS] = settings
    app[COMMON_SETTINGS] = settings.common
    sio = socketio.AsyncServer(
        async_mode="aiohttp",
        cors_allowed_origins=settings.frontend_origins,
        transports=["polling", "websocket"],
        max_http_buffer_size=MAX_CLIENT_MESSAGE_BYTES,
        logger=False,
        engineio_logger=False,
        json=OrjsonPackets,
    )
    app[SIO] = sio
    app[TRANSPORT_REQUESTS] = TransportRequests()
    add_socketio_routes(app, sio, app[TRANSPORT_REQUESTS])
    handlers.register(sio, app)
    app.cleanup_ctx.append(stores)
    app.cleanup_ctx.append(hub_context)
    # The reader holds no work worth waiting for (sockets are drained before it stops): cancelling
    # its blocked XREAD beats waiting up to a second for it.
    app.cleanup_ctx.append(background("stream-reader", read_stream, grace_s=0.1))
    app.cleanup_ctx.append(background("reader-heartbeat", beat, grace_s=3))
    app.on_shutdown.append(drain_sockets)
    add_ops_routes(app, on_scrape=measure_lag)
    return app
