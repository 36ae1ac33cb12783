"""aiohttp building blocks every service uses: stores in cleanup contexts, background tasks,
`/health` and `/metrics`, the JSON error middleware, and `serve()` with graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from functools import partial
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
import structlog
import uuid_utils
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from paystream.db import DATABASE_ERRORS, DATABASE_UNAVAILABLE_ERRORS, create_pool
from paystream.errors import ApiError, ServiceUnavailableError
from paystream.gctuning import freeze_startup_heap
from paystream.inputs import is_token
from paystream.loops import Backoff, retry_until_ready
from paystream.redis import REDIS_UNAVAILABLE_ERRORS, create_redis
from paystream.settings import DEFAULT_BIND_HOST, CommonSettings
from paystream.streaminfo import BUS_METRICS, BUS_STREAMS, bus_streams
from paystream.supervision import Supervisor

log = structlog.get_logger(__name__)

COMMON_SETTINGS = web.AppKey("common_settings", CommonSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
SERVICE_NAME = web.AppKey("service_name", str)
SUPERVISOR = web.AppKey("supervisor", Supervisor)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]
BackgroundRunner = Callable[[web.Application, asyncio.Event], Coroutine[Any, Any, None]]
# Refreshes a service's own gauges when /metrics is scraped; must not raise.
ScrapeHook = Callable[[web.Application], Awaitable[None]]

STARTUP_DEADLINE_S = 120.0
REQUEST_ID_HEADER = "X-Request-Id"
MAX_REQUEST_ID_LENGTH = 128


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=orjson.dumps(body, option=orjson.OPT_UTC_Z),
        status=status,
        content_type="application/json",
        headers=headers,
    )


async def stores(app: web.Application) -> AsyncIterator[None]:
    """Open the PostgreSQL pool and the Redis client; waits for PostgreSQL at start-up."""
    settings = app[COMMON_SETTINGS]
    # Named, so pg_stat_activity and the server's logs say which service a session serves.
    server_settings = {"application_name": app.get(SERVICE_NAME, "paystream")}
    pool = await retry_until_ready(
        "database.startup",
        partial(create_pool, settings.database, server_settings=server_settings),
        retry_on=DATABASE_ERRORS,
        backoff=Backoff(cap_s=2.0),
        deadline_s=STARTUP_DEADLINE_S,
    )
    app[POOL] = pool
    app[REDIS] = create_redis(settings.redis)
    try:
        yield
    finally:
        await app[REDIS].aclose()
        await pool.close()


def supervisor_of(app: web.Application) -> Supervisor:
    """The app's task supervisor (created with the first background task, during start-up)."""
    if SUPERVISOR not in app:
        app[SUPERVISOR] = Supervisor()
    return app[SUPERVISOR]


def background(name: str, runner: BackgroundRunner, *, grace_s: float = 15.0) -> CleanupContext:
    """A cleanup context running `runner(app, stop)` for the app's life under the app's supervisor
    (restarted with backoff should it fail; `/health` is degraded meanwhile); on shutdown it sets
    `stop`, waits up to `grace_s` for the runner to drain, then cancels it."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        async def run(stop: asyncio.Event) -> None:
            await runner(app, stop)

        supervised = supervisor_of(app).start(name, run, grace_s=grace_s)
        try:
            yield
        finally:
            await supervised.finish()

    return context


async def health(request: web.Request) -> web.Response:
    """200 with the state of PostgreSQL, Redis and the background tasks; 503 (`degraded`) when a
    store is down or a background task is waiting to be restarted."""
    app = request.app
    checks: dict[str, Any] = {"database": "ok", "redis": "ok"}
    try:
        async with asyncio.timeout(2):
            await app[POOL].fetchval("SELECT 1")
    except DATABASE_ERRORS:
        checks["database"] = "down"
    try:
        async with asyncio.timeout(2):
            await app[REDIS].ping()
    except REDIS_UNAVAILABLE_ERRORS:
        checks["redis"] = "down"
    healthy = all(state == "ok" for state in checks.values())
    supervisor = app.get(SUPERVISOR)
    if supervisor is not None:
        checks["background"] = supervisor.report()
        healthy = healthy and supervisor.healthy
    body = {"status": "ok" if healthy else "degraded", "service": app.get(SERVICE_NAME, ""), **checks}
    return json_response(body, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    # Stream lag, dead letters and outbox backlog are read at scrape time (cached for a second).
    common = request.app.get(COMMON_SETTINGS)
    streams = bus_streams(common.streams) if common is not None else BUS_STREAMS
    await BUS_METRICS.refresh(request.app.get(REDIS), request.app.get(POOL), streams)
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


def add_ops_routes(app: web.Application, *, on_scrape: ScrapeHook | None = None) -> None:
    """`/health` and `/metrics`; `on_scrape` refreshes the service's own figures before each scrape."""
    app.router.add_get("/health", health)
    if on_scrape is None:
        app.router.add_get("/metrics", metrics)
        return

    async def metrics_and_own(request: web.Request) -> web.Response:
        await on_scrape(request.app)
        return await metrics(request)

    app.router.add_get("/metrics", metrics_and_own)


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Every error leaves as JSON: domain errors with their status, PostgreSQL down as 503,
    anything unexpected as a 500 that names the request id and never the stack trace."""
    # A client's id is kept only when it is a plain token: it is echoed in headers and every log line.
    offered = request.headers.get(REQUEST_ID_HEADER, "")
    request_id = offered if is_token(offered, MAX_REQUEST_ID_LENGTH) else uuid_utils.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    except ApiError as exc:
        headers = {**exc.headers, REQUEST_ID_HEADER: request_id}
        return json_response(exc.to_body(), status=exc.status, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "NOT_FOUND_ERROR", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.status, "BAD_REQUEST_ERROR"
        )
        body = {"error": {"code": code, "description": exc.reason, "field": None}}
        return json_response(body, status=exc.status, headers={REQUEST_ID_HEADER: request_id})
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        log.warning("request.database_unavailable", error=str(exc), path=request.path)
        unavailable = ServiceUnavailableError("the database is unavailable; retry shortly")
        return json_response(unavailable.to_body(), status=503, headers={"Retry-After": "1"})
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("request.unhandled_error", path=request.path, method=request.method)
        body = {
            "error": {
                "code": "SERVER_ERROR",
                "description": "internal error",
                "field": None,
                "request_id": request_id,
            }
        }
        return json_response(body, status=500, headers={REQUEST_ID_HEADER: request_id})
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    response.headers.setdefault(REQUEST_ID_HEADER, request_id)
    return response


def serve(
    app: web.Application, *, port: int, host: str = DEFAULT_BIND_HOST, shutdown_timeout: float = 15.0
) -> None:
    """Run the app on uvloop until SIGTERM/SIGINT, then shut down gracefully (cleanup contexts drain)."""
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    # Last of the startup hooks, so after every cleanup context has built what it keeps.
    app.on_startup.append(_freeze_startup_heap)
    main = loop.create_task(_run(app, host=host, port=port, shutdown_timeout=shutdown_timeout))
    try:
        loop.run_until_complete(main)
    except (web.GracefulExit, KeyboardInterrupt):  # SIGTERM / SIGINT
        pass
    finally:
        main.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(main)  # cleanup contexts drain here
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


async def _run(app: web.Application, *, host: str, port: int, shutdown_timeout: float) -> None:
    runner = JsonErrorAppRunner(app, handle_signals=True, access_log=None, shutdown_timeout=shutdown_timeout)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        await asyncio.Event().wait()  # until a signal raises GracefulExit
    finally:
        await runner.cleanup()


class _JsonErrorRequestHandler(RequestHandler):
    """aiohttp answers requests it cannot parse (a malformed request line, an invalid or oversized
    header) itself, before any middleware, in plain text that echoes part of the input. This
    answers them in the platform's JSON error shape instead, and logs no byte of the input."""

    __slots__ = ()

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        log.warning("request.unparseable", status=status, error=type(exc).__name__ if exc else None)
        if request.writer.output_size > 0:
            raise ConnectionError("the response has started; the connection is closed instead")
        if status >= 500:
            error = {"code": "SERVER_ERROR", "description": "internal error", "field": None}
        else:
            error = {
                "code": "BAD_REQUEST_ERROR",
                "description": "the request could not be parsed: a malformed request line or header, "
                "or a header too large",
                "field": None,
            }
        response = json_response({"error": error}, status=status)
        response.force_close()
        return response


class _JsonErrorServer(web.Server):
    def __call__(self) -> RequestHandler:
        handler = super().__call__()
        handler.__class__ = _JsonErrorRequestHandler  # same layout: the subclass adds no slots
        return handler


class JsonErrorAppRunner(web.AppRunner):
    """An AppRunner whose connections answer unparseable requests in JSON (see above)."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server


async def _freeze_startup_heap(_app: web.Application) -> None:
    freeze_startup_heap()
