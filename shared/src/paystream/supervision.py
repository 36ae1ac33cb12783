"""Background tasks that survive their own bugs: the one task supervisor of every service.

A process's long-running loops (stream consumers, the outbox relay, writers, schedulers, readers) each
run under a `Supervisor`. A loop that raises, or returns while it should still run, is logged and
started again after a backoff with jitter (reset once a run has lasted `HEALTHY_RUN_S`); while it is
down the supervisor reports it, and `/health` answers `degraded` (503) naming it. A clean stop sets the
loop's `stop` event, waits up to its grace period, then cancels it.

Nothing a loop's input can contain may leave a service silently without that loop: this is what turns
"an unexpected exception killed the writer" into a logged restart that operators can see.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

import structlog

from paystream.loops import Backoff, wait_or_stop
from paystream.metrics import BACKGROUND_TASK_RESTARTS, BACKGROUND_TASK_UP

log = structlog.get_logger(__name__)

# A loop that ran this long before failing starts its backoff from the beginning again.
HEALTHY_RUN_S = 60.0
RESTART_BACKOFF = Backoff(base_s=0.5, cap_s=30.0)

LoopRunner = Callable[[asyncio.Event], Awaitable[None]]


class TaskState(StrEnum):
    RUNNING = "running"
    RESTARTING = "restarting"
    STOPPED = "stopped"


@dataclass(slots=True)
class TaskStatus:
    """What `/health` says about one supervised loop."""

    name: str
    state: TaskState = TaskState.RUNNING
    restarts: int = 0
    last_error: str | None = None
    down_since: float | None = None

    def to_dict(self) -> dict[str, object]:
        body: dict[str, object] = {"state": self.state.value, "restarts": self.restarts}
        if self.last_error is not None:
            body["last_error"] = self.last_error
        if self.down_since is not None:
            body["down_for_s"] = round(time.monotonic() - self.down_since, 1)
        return body


@dataclass(slots=True)
class SupervisedTask:
    """One loop under supervision: `request_stop()`, then `await finish()`."""

    status: TaskStatus
    grace_s: float
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def request_stop(self) -> None:
        self.stop.set()

    async def finish(self, grace_s: float | None = None) -> None:
        """Stop the loop: wait up to the grace period for it to return, then cancel it. Idempotent."""
        self.stop.set()
        task = self.task
        if task is None or task.done():
            return
        _, pending = await asyncio.wait({task}, timeout=self.grace_s if grace_s is None else grace_s)
        if pending:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class Supervisor:
    """Runs and restarts the background loops of one process, and reports their states."""

    def __init__(self) -> None:
        self._tasks: dict[str, SupervisedTask] = {}

    def start(self, name: str, runner: LoopRunner, *, grace_s: float = 15.0) -> SupervisedTask:
        """Run `runner(stop)` until `stop` is set, restarting it whenever it fails or returns early."""
        if name in self._tasks and self._tasks[name].status.state is not TaskState.STOPPED:
            raise ValueError(f"a background task named {name!r} is already running")
        supervised = SupervisedTask(TaskStatus(name), grace_s)
        supervised.task = asyncio.create_task(self._keep_running(supervised, runner), name=name)
        self._tasks[name] = supervised
        BACKGROUND_TASK_UP.labels(name).set(1)
        return supervised

    @property
    def healthy(self) -> bool:
        return all(task.status.state is not TaskState.RESTARTING for task in self._tasks.values())

    def report(self) -> dict[str, dict[str, object]]:
        return {name: task.status.to_dict() for name, task in sorted(self._tasks.items())}

    def unhealthy(self) -> list[str]:
        return sorted(name for name, task in self._tasks.items() if task.status.state is TaskState.RESTARTING)

    async def _keep_running(self, supervised: SupervisedTask, runner: LoopRunner) -> None:
        status, stop = supervised.status, supervised.stop
        failures = 0
        loop = asyncio.get_running_loop()
        try:
            while not stop.is_set():
                started = loop.time()
                try:
                    await runner(stop)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    error = f"{type(exc).__name__}: {exc}"[:500]
                    log.exception("background.crashed", task=status.name)
                else:
                    if stop.is_set():
                        return
                    error = "returned before it was asked to stop"
                    log.error("background.exited", task=status.name)
                if loop.time() - started >= HEALTHY_RUN_S:
                    failures = 0
                failures += 1
                self._mark_down(status, error)
                delay = RESTART_BACKOFF.delay(failures)
                if await wait_or_stop(stop, delay):
                    return
                log.info("background.restarting", task=status.name, restarts=status.restarts + 1)
                self._mark_up(status)
        finally:
            status.state = TaskState.STOPPED
            status.down_since = None
            BACKGROUND_TASK_UP.labels(status.name).set(0)

    @staticmethod
    def _mark_down(status: TaskStatus, error: str) -> None:
        status.state = TaskState.RESTARTING
        status.last_error = error
        status.down_since = time.monotonic()
        BACKGROUND_TASK_UP.labels(status.name).set(0)

    @staticmethod
    def _mark_up(status: TaskStatus) -> None:
        status.state = TaskState.RUNNING
        status.restarts += 1
        status.down_since = None
        BACKGROUND_TASK_RESTARTS.labels(status.name).inc()
        BACKGROUND_TASK_UP.labels(status.name).set(1)
