"""aiohttp building blocks every service uses: stores in cleanup contexts, background tasks,
`/health` and `/metrics`, the JSON error middleware, and `serve()` with graceful shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
import structlog
import uuid_utils
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from paystream.aio import backoff_delay
from paystream.db import DATABASE_UNAVAILABLE_ERRORS, create_pool
from paystream.errors import ApiError, ServiceUnavailableError
from paystream.gctuning import freeze_startup_heap
from paystream.redis import REDIS_UNAVAILABLE_ERRORS, create_redis
from paystream.settings import CommonSettings
from paystream.streaminfo import BUS_METRICS

log = structlog.get_logger(__name__)

COMMON_SETTINGS = web.AppKey("common_settings", CommonSettings)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
SERVICE_NAME = web.AppKey("service_name", str)

CleanupContext = Callable[[web.Application], AsyncIterator[None]]
BackgroundRunner = Callable[[web.Application, asyncio.Event], Coroutine[Any, Any, None]]
# Refreshes a service's own gauges when /metrics is scraped; must not raise.
ScrapeHook = Callable[[web.Application], Awaitable[None]]

STARTUP_DEADLINE_S = 120.0


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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STARTUP_DEADLINE_S
    failures = 0
    while True:
        try:
            # Named, so pg_stat_activity and the server's logs say which service a session serves.
            pool = await create_pool(
                settings.database, server_settings={"application_name": app.get(SERVICE_NAME, "paystream")}
            )
            break
        except (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.PostgresError) as exc:  # type: ignore[misc]
            failures += 1
            if loop.time() > deadline:
                raise
            log.warning("database.unavailable_at_startup", error=str(exc))
            await asyncio.sleep(backoff_delay(failures, cap=2.0))
    app[POOL] = pool
    app[REDIS] = create_redis(settings.redis)
    try:
        yield
    finally:
        await app[REDIS].aclose()
        await pool.close()


def background(name: str, runner: BackgroundRunner, *, grace_s: float = 15.0) -> CleanupContext:
    """A cleanup context running `runner(app, stop)` for the app's life; on shutdown it sets `stop`,
    waits up to `grace_s` for the runner to drain, then cancels it."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task: asyncio.Task[None] = asyncio.create_task(runner(app, stop), name=name)

        def report_crash(done: asyncio.Task[None]) -> None:
            if not done.cancelled() and done.exception() is not None:
                log.error("background.crashed", task=name, error=repr(done.exception()))

        task.add_done_callback(report_crash)
        try:
            yield
        finally:
            stop.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout=grace_s)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except Exception:  # already reported by report_crash
                pass

    return context


async def health(request: web.Request) -> web.Response:
    """200 with the state of PostgreSQL and Redis, 503 when either is down."""
    app = request.app
    checks = {"database": "ok", "redis": "ok"}
    try:
        async with asyncio.timeout(2):
            await app[POOL].fetchval("SELECT 1")
    except (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.PostgresError):  # type: ignore[misc]
        checks["database"] = "down"
    try:
        async with asyncio.timeout(2):
            await app[REDIS].ping()
    except REDIS_UNAVAILABLE_ERRORS:
        checks["redis"] = "down"
    healthy = all(state == "ok" for state in checks.values())
    body = {"status": "ok" if healthy else "degraded", "service": app.get(SERVICE_NAME, ""), **checks}
    return json_response(body, status=200 if healthy else 503)


async def metrics(request: web.Request) -> web.Response:
    # Stream lag, dead letters and outbox backlog are read at scrape time (cached for a second).
    await BUS_METRICS.refresh(request.app.get(REDIS), request.app.get(POOL))
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
    request_id = request.headers.get("X-Request-Id") or uuid_utils.uuid4().hex
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    except ApiError as exc:
        return json_response(exc.to_body(), status=exc.status, headers={"X-Request-Id": request_id})
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = {404: "NOT_FOUND_ERROR", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}.get(
            exc.status, "BAD_REQUEST_ERROR"
        )
        body = {"error": {"code": code, "description": exc.reason, "field": None}}
        return json_response(body, status=exc.status, headers={"X-Request-Id": request_id})
    except (*DATABASE_UNAVAILABLE_ERRORS, asyncpg.exceptions.CannotConnectNowError) as exc:  # type: ignore[misc]
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
        return json_response(body, status=500, headers={"X-Request-Id": request_id})
    finally:
        structlog.contextvars.unbind_contextvars("request_id")
    response.headers.setdefault("X-Request-Id", request_id)
    return response


def serve(app: web.Application, *, port: int, host: str = "0.0.0.0", shutdown_timeout: float = 15.0) -> None:
    """Run the app on uvloop until SIGTERM/SIGINT, then shut down gracefully (cleanup contexts drain)."""
    import uvloop

    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    # Last of the startup hooks, so after every cleanup context has built what it keeps.
    app.on_startup.append(_freeze_startup_heap)
    web.run_app(
        app,
        host=host,
        port=port,
        shutdown_timeout=shutdown_timeout,
        access_log=None,
        print=None,
        handle_signals=True,
        loop=loop,
    )


async def _freeze_startup_heap(_app: web.Application) -> None:
    freeze_startup_heap()
