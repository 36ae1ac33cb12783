"""The stop-aware loop helper: waits that stop cuts short, backoff that grows and resets, errors
that never end the loop, cancellation that always gets through. No test sleeps: waits are either
cut short by an event the test sets, or backoffs of zero seconds recorded by a fake policy."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import pytest
from structlog.testing import capture_logs

from paystream.loops import (
    AGAIN,
    Backoff,
    StepResult,
    retry_until_ready,
    run_until_stopped,
)

HOUR = 3600.0


@dataclass(frozen=True)
class RecordedBackoff(Backoff):
    """Records the failure count of each backoff, and waits `wait_s` (0: not at all)."""

    wait_s: float = 0.0
    seen: list[int] = field(default_factory=list)

    def delay(self, failures: int) -> float:
        self.seen.append(failures)
        return self.wait_s


class Script:
    """A step that plays its outcomes in turn (an exception is raised, anything else returned),
    then sets `stop` and asks to go again."""

    def __init__(self, stop: asyncio.Event, *outcomes: StepResult | BaseException) -> None:
        self.stop = stop
        self.outcomes: deque[StepResult | BaseException] = deque(outcomes)
        self.calls = 0

    async def __call__(self) -> StepResult:
        self.calls += 1
        if not self.outcomes:
            self.stop.set()
            return AGAIN
        outcome = self.outcomes.popleft()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


def events(logs: list[dict[str, Any]], prefix: str) -> list[tuple[str, int]]:
    return [
        (entry["event"], entry.get("failures", entry.get("after_failures", 0)))
        for entry in logs
        if entry["event"].startswith(prefix)
    ]


async def test_failures_back_off_further_each_time_and_a_success_resets_the_count() -> None:
    stop = asyncio.Event()
    backoff = RecordedBackoff()
    step = Script(stop, OSError("down"), OSError("down"), ConnectionError("down"), AGAIN, OSError("again"))
    with capture_logs() as logs:
        await run_until_stopped("test.loop", step, stop, interval_s=HOUR, backoff=backoff)
    assert backoff.seen == [1, 2, 3, 1]
    assert events(logs, "test.loop") == [
        ("test.loop_failed", 1),
        ("test.loop_failed", 2),
        ("test.loop_failed", 3),
        ("test.loop_recovered", 3),
        ("test.loop_failed", 1),
        ("test.loop_recovered", 1),
    ]
    failed = next(entry for entry in logs if entry["event"] == "test.loop_failed")
    assert failed["log_level"] == "warning" and failed["error"] == "down" and "retry_in_s" in failed


async def test_an_unexpected_exception_is_logged_with_its_traceback_and_the_loop_goes_on() -> None:
    stop = asyncio.Event()
    backoff = RecordedBackoff()
    step = Script(stop, ValueError("a bug one input found"), AGAIN)
    with capture_logs() as logs:
        await run_until_stopped(
            "test.loop",
            step,
            stop,
            interval_s=HOUR,
            retry_on=(OSError,),
            backoff=backoff,
            log_fields={"k": 1},
        )
    assert step.calls == 3  # the failure, the success, the step that stops the loop
    assert backoff.seen == [1]
    error = next(entry for entry in logs if entry["event"] == "test.loop_error")
    assert error["log_level"] == "error" and error["exc_info"] is True and error["k"] == 1


async def test_stop_during_the_wait_after_a_success_ends_the_loop_at_once() -> None:
    stop = asyncio.Event()
    ran = asyncio.Event()

    async def step() -> None:
        ran.set()

    task = asyncio.create_task(run_until_stopped("test.loop", step, stop, interval_s=HOUR))
    await ran.wait()
    stop.set()
    await task  # an hour's wait would trip the test's timeout


async def test_stop_during_a_backoff_ends_the_loop_at_once() -> None:
    stop = asyncio.Event()
    failed = asyncio.Event()

    async def step() -> None:
        failed.set()
        raise OSError("down")

    backoff = RecordedBackoff(wait_s=HOUR)
    task = asyncio.create_task(run_until_stopped("test.loop", step, stop, interval_s=0, backoff=backoff))
    await failed.wait()
    stop.set()
    await task
    assert backoff.seen == [1]


async def test_stop_during_the_first_wait_means_the_step_never_runs() -> None:
    stop = asyncio.Event()
    step = Script(stop)
    task = asyncio.create_task(run_until_stopped("test.loop", step, stop, interval_s=HOUR, first_wait_s=HOUR))
    await asyncio.sleep(0)  # let the loop start waiting (any point before the hour is the same)
    stop.set()
    await task
    assert step.calls == 0


async def test_stop_during_a_step_lets_it_finish_and_runs_no_other() -> None:
    stop = asyncio.Event()
    entered, release = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def step() -> StepResult:
        calls.append("started")
        entered.set()
        await release.wait()
        calls.append("finished")
        return AGAIN

    task = asyncio.create_task(run_until_stopped("test.loop", step, stop, interval_s=0))
    await entered.wait()
    stop.set()
    release.set()
    await task
    assert calls == ["started", "finished"]


async def test_a_step_chooses_its_next_wait_and_a_wake_cuts_it_short() -> None:
    stop, wake = asyncio.Event(), asyncio.Event()
    waiting = asyncio.Event()
    seen_wake: list[bool] = []
    outcomes: deque[StepResult] = deque([HOUR, AGAIN])

    async def step() -> StepResult:
        seen_wake.append(wake.is_set())  # cleared before each step
        if not outcomes:
            stop.set()
            return None
        outcome = outcomes.popleft()
        if outcome == HOUR:
            waiting.set()
        return outcome

    # interval_s=0 would go again at once: the hour the first step asked for is what holds it.
    task = asyncio.create_task(run_until_stopped("test.loop", step, stop, interval_s=0, wake=wake))
    await waiting.wait()
    wake.set()
    await task
    assert seen_wake == [False, False, False]


async def test_cancellation_during_a_wait_propagates() -> None:
    stop = asyncio.Event()
    ran = asyncio.Event()

    async def step() -> None:
        ran.set()

    task = asyncio.create_task(run_until_stopped("test.loop", step, stop, interval_s=HOUR))
    await ran.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert task.cancelled()


async def test_a_cancelled_step_is_never_taken_for_a_failure() -> None:
    stop = asyncio.Event()
    backoff = RecordedBackoff()
    step = Script(stop, asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        # Even when told to retry everything.
        await run_until_stopped(
            "test.loop", step, stop, interval_s=0, retry_on=(BaseException,), backoff=backoff
        )
    assert step.calls == 1 and backoff.seen == []


def test_backoff_doubles_up_to_its_cap_with_jitter_of_half_either_way() -> None:
    backoff = Backoff(base_s=0.1, cap_s=5.0)
    for failures in range(1, 25):
        nominal = min(5.0, 0.1 * 2**failures)
        for _ in range(50):
            assert 0.5 * nominal <= backoff.delay(failures) <= 1.5 * nominal
    assert max(backoff.delay(1000) for _ in range(100)) <= 7.5


async def test_retry_until_ready_retries_outages_and_returns_the_result() -> None:
    stop = asyncio.Event()
    backoff = RecordedBackoff()
    failures = deque([OSError("down"), ConnectionError("down")])

    async def attempt() -> str:
        if failures:
            raise failures.popleft()
        return "ready"

    assert await retry_until_ready("test.start", attempt, stop, backoff=backoff) == "ready"
    assert backoff.seen == [1, 2]
    # Without a stop event too (start-up, before there is one).
    failures.append(OSError("down"))
    assert await retry_until_ready("test.start", attempt, backoff=backoff) == "ready"


async def test_retry_until_ready_lets_an_unexpected_error_through_at_once() -> None:
    calls = 0

    async def attempt() -> None:
        nonlocal calls
        calls += 1
        raise ValueError("misconfigured")

    with pytest.raises(ValueError, match="misconfigured"):
        await retry_until_ready("test.start", attempt, asyncio.Event(), backoff=RecordedBackoff())
    assert calls == 1


async def test_retry_until_ready_gives_up_when_stopped_or_past_its_deadline() -> None:
    stop = asyncio.Event()
    failed = asyncio.Event()

    async def attempt() -> str:
        failed.set()
        await asyncio.sleep(0.001)  # so that time has passed since the start of a 0 s deadline
        raise OSError("down")

    task = asyncio.create_task(
        retry_until_ready("test.start", attempt, stop, backoff=RecordedBackoff(wait_s=HOUR))
    )
    await failed.wait()
    stop.set()
    assert await task is None

    with pytest.raises(OSError, match="down"):
        await retry_until_ready("test.start", attempt, deadline_s=0.0, backoff=RecordedBackoff())


async def test_a_step_that_never_suspends_still_lets_other_tasks_run() -> None:
    stop = asyncio.Event()
    calls = 0

    async def busy() -> StepResult:
        nonlocal calls
        calls += 1
        return AGAIN  # more work, found without a single await that suspends

    async def stopper() -> None:
        stop.set()

    loop_task = asyncio.create_task(run_until_stopped("test.loop", busy, stop))
    await asyncio.create_task(stopper())  # runs only if the loop yields
    await loop_task
    assert calls >= 1
