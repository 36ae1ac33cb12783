"""The task supervisor: a background loop that fails is logged, restarted with backoff, and reported
by `/health` as `degraded` until it runs again."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from paystream.settings import CommonSettings
from paystream.supervision import Supervisor, TaskState
from paystream.web import COMMON_SETTINGS, SERVICE_NAME, add_ops_routes, background, stores
from paystream_devstack.testing import eventually


class Flaky:
    """A loop that fails its first `failures` runs, then runs until asked to stop."""

    def __init__(self, failures: int = 1, *, return_instead: bool = False) -> None:
        self.failures = failures
        self.return_instead = return_instead
        self.runs = 0
        self.crashed = asyncio.Event()
        self.running = asyncio.Event()

    async def __call__(self, stop: asyncio.Event) -> None:
        self.runs += 1
        if self.runs <= self.failures:
            self.crashed.set()
            if self.return_instead:
                return
            raise ValueError("a bug the loop's input found")
        self.running.set()
        await stop.wait()


async def test_a_crashed_loop_is_reported_down_then_restarted() -> None:
    supervisor = Supervisor()
    flaky = Flaky()
    task = supervisor.start("flaky", flaky)
    await flaky.crashed.wait()
    assert not supervisor.healthy
    assert supervisor.unhealthy() == ["flaky"]
    report = supervisor.report()["flaky"]
    assert report["state"] == "restarting"
    assert report["last_error"] == "ValueError: a bug the loop's input found"
    await asyncio.wait_for(flaky.running.wait(), timeout=5)
    assert supervisor.healthy
    assert supervisor.report()["flaky"]["restarts"] == 1
    await task.finish()
    assert task.status.state is TaskState.STOPPED
    assert flaky.runs == 2


async def test_a_loop_that_returns_before_it_is_stopped_is_restarted_too() -> None:
    supervisor = Supervisor()
    flaky = Flaky(return_instead=True)
    task = supervisor.start("early", flaky)
    await flaky.crashed.wait()
    assert supervisor.report()["early"]["state"] == "restarting"
    await asyncio.wait_for(flaky.running.wait(), timeout=5)
    await task.finish()
    assert flaky.runs == 2


async def test_finish_cancels_a_loop_that_ignores_its_stop_after_the_grace_period() -> None:
    cancelled = asyncio.Event()

    async def stubborn(_stop: asyncio.Event) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    task = Supervisor().start("stubborn", stubborn, grace_s=0.05)
    await asyncio.sleep(0)
    await task.finish()
    assert cancelled.is_set()
    assert task.status.state is TaskState.STOPPED
    await task.finish()  # idempotent


async def test_health_is_degraded_naming_the_task_while_it_is_down(redis_url: str, database_url: str) -> None:
    flaky = Flaky()

    async def runner(_app: web.Application, stop: asyncio.Event) -> None:
        await flaky(stop)

    app = web.Application()
    app[SERVICE_NAME] = "test"
    app[COMMON_SETTINGS] = CommonSettings.from_env({"REDIS_URL": redis_url, "DATABASE_URL": database_url})
    app.cleanup_ctx.append(stores)
    app.cleanup_ctx.append(background("flaky-loop", runner, grace_s=1))
    add_ops_routes(app)
    async with TestClient(TestServer(app)) as client:
        await flaky.crashed.wait()
        # The first restart waits at least 0.5 s (RESTART_BACKOFF): ample time for one request.
        response = await client.get("/health")
        body: dict[str, Any] = await response.json()
        assert not flaky.running.is_set()
        assert response.status == 503
        assert body["status"] == "degraded"
        assert body["database"] == body["redis"] == "ok"
        assert body["background"]["flaky-loop"]["state"] == "restarting"
        await asyncio.wait_for(flaky.running.wait(), timeout=5)

        async def healthy() -> bool:
            return (await client.get("/health")).status == 200

        await eventually(healthy)
        body = await (await client.get("/health")).json()
        assert body["status"] == "ok"
        assert body["background"]["flaky-loop"]["state"] == "running"
        assert body["background"]["flaky-loop"]["restarts"] == 1
