"""The due-time loop on its own: what it claims and how long it sleeps, with time driven by the test.

The loop's waits go to a `Timer` that records each requested sleep and ends it only when the test
says time has passed (or when one of the loop's events is set), so nothing here sleeps.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from paystream.duetime import Claimed, DueTimeLoop, DueTiming

TIMING = DueTiming(fallback_s=60.0, busy_pause_s=0.5, margin_s=0.25)


@dataclass(frozen=True, slots=True)
class Sleep:
    seconds: float
    woken: bool  # ended by one of the loop's events (wake or stop), not by time passing


class Timer:
    """Stands in for the loop's interruptible sleep."""

    def __init__(self) -> None:
        self._requested: asyncio.Queue[float] = asyncio.Queue()
        self._ended: asyncio.Queue[Sleep] = asyncio.Queue()
        self._elapsed: asyncio.Future[None] | None = None

    async def wait(self, events: list[asyncio.Event], seconds: float) -> None:
        self._elapsed = asyncio.get_running_loop().create_future()
        await self._requested.put(seconds)
        waiters = [asyncio.ensure_future(event.wait()) for event in events]
        try:
            await asyncio.wait([*waiters, self._elapsed], return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        await self._ended.put(Sleep(seconds, woken=any(event.is_set() for event in events)))

    async def asleep(self) -> float:
        """Wait until the loop sleeps; how long it asked to."""
        return await self._requested.get()

    async def elapse(self) -> Sleep:
        """Let the current sleep's time pass; how that sleep ended."""
        assert self._elapsed is not None
        if not self._elapsed.done():
            self._elapsed.set_result(None)
        return await self.ended()

    async def ended(self) -> Sleep:
        return await self._ended.get()


@dataclass
class Work:
    """The owner's side: scripted claim outcomes and due times (an exception is raised)."""

    claims: deque[Claimed | Exception] = field(default_factory=deque)
    due_times: deque[float | Exception | None] = field(default_factory=deque)
    claimed: int = 0
    asked_due: int = 0
    during_claim: list[DueTimeLoop] = field(default_factory=list)  # woken from inside the next claim

    async def claim(self) -> Claimed:
        self.claimed += 1
        for loop in self.during_claim:
            loop.wake()
        self.during_claim.clear()
        outcome = self.claims.popleft() if self.claims else Claimed.NOTHING
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    async def seconds_to_next_due(self) -> float | None:
        self.asked_due += 1
        seconds = self.due_times.popleft() if self.due_times else None
        if isinstance(seconds, Exception):
            raise seconds
        return seconds


@dataclass
class Running:
    loop: DueTimeLoop
    work: Work
    timer: Timer
    stop: asyncio.Event
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.loop.run(self.stop))


@pytest.fixture
async def running() -> AsyncIterator[Running]:
    work, timer = Work(), Timer()
    loop = DueTimeLoop(
        "test", work.claim, work.seconds_to_next_due, TIMING, wait=timer.wait, backoff=lambda n: 7.0 * n
    )
    state = Running(loop, work, timer, asyncio.Event())
    yield state
    state.stop.set()
    if state.task is not None:
        await state.task


def test_a_claim_outcome_follows_from_what_was_asked_for_and_taken() -> None:
    assert Claimed.of(0, 0) is Claimed.AT_CAPACITY
    assert Claimed.of(0, 10) is Claimed.NOTHING
    assert Claimed.of(3, 10) is Claimed.SOME
    assert Claimed.of(10, 10) is Claimed.FULL_BATCH


async def test_it_claims_while_work_is_due_then_sleeps_until_the_next_due_time(running: Running) -> None:
    work = running.work
    # A full batch: claim again at once, without asking when work is due. Then a partial batch with
    # rows still overdue: claim again at once. Then nothing: sleep until the next due time.
    work.claims.extend([Claimed.FULL_BATCH, Claimed.SOME, Claimed.NOTHING])
    work.due_times.extend([-0.5, 30.0])
    running.start()
    assert await running.timer.asleep() == 30.0 + TIMING.margin_s
    assert (work.claimed, work.asked_due) == (3, 2)


@pytest.mark.parametrize(
    ("next_due", "expected_sleep"),
    [
        (None, TIMING.fallback_s),  # nothing scheduled: the safety net
        (3600.0, TIMING.fallback_s),  # far off: never longer than the safety net
        (-1.0, TIMING.busy_pause_s),  # due, but nothing could be taken: another replica holds it
    ],
)
async def test_the_sleep_is_bounded_and_overdue_rows_held_elsewhere_get_a_pause(
    running: Running, next_due: float | None, expected_sleep: float
) -> None:
    running.work.due_times.append(next_due)
    running.start()
    assert await running.timer.asleep() == expected_sleep
    assert running.work.claimed == 1


async def test_at_capacity_it_sleeps_until_woken_without_asking_for_due_times(running: Running) -> None:
    work = running.work
    work.claims.extend([Claimed.AT_CAPACITY, Claimed.NOTHING])
    work.due_times.append(30.0)
    running.start()
    assert await running.timer.asleep() == TIMING.fallback_s
    assert work.asked_due == 0
    running.loop.wake()  # a piece of work finished: capacity
    assert (await running.timer.ended()).woken
    assert await running.timer.asleep() == 30.0 + TIMING.margin_s
    assert work.claimed == 2


async def test_due_in_wakes_the_loop_only_for_work_due_before_its_planned_wake_up(running: Running) -> None:
    work = running.work
    work.due_times.extend([30.0, 30.0, 30.0])
    running.start()
    assert await running.timer.asleep() == 30.0 + TIMING.margin_s
    running.loop.due_in(45.0)  # after the planned wake-up: no need to wake
    assert not (await running.timer.elapse()).woken
    assert await running.timer.asleep() == 30.0 + TIMING.margin_s
    assert work.claimed == 2
    running.loop.due_in(10.0)  # before it: claim again now (and read the due times again)
    assert (await running.timer.ended()).woken
    assert await running.timer.asleep() == 30.0 + TIMING.margin_s
    assert work.claimed == 3


async def test_a_wake_up_that_comes_while_a_claim_runs_is_not_lost(running: Running) -> None:
    work = running.work
    work.during_claim.append(running.loop)  # new work announced while the first claim runs
    work.due_times.extend([30.0, 30.0])
    running.start()
    await running.timer.asleep()
    assert (await running.timer.ended()).woken, "the wake-up ends the sleep at once"
    await running.timer.asleep()
    assert work.claimed == 2


async def test_a_database_error_backs_off_and_a_wake_up_during_the_failed_step_does_not_cut_it_short(
    running: Running,
) -> None:
    work = running.work
    work.claims.extend([ConnectionRefusedError("database down"), ConnectionRefusedError("still down")])
    work.during_claim.append(running.loop)
    work.due_times.extend([30.0, TimeoutError("down again")])
    running.start()
    assert await running.timer.asleep() == 7.0  # the first backoff
    assert not (await running.timer.elapse()).woken
    assert await running.timer.asleep() == 14.0  # the second, longer
    await running.timer.elapse()
    assert await running.timer.asleep() == 30.0 + TIMING.margin_s  # recovered
    await running.timer.elapse()
    assert await running.timer.asleep() == 7.0  # a later failure backs off from the start again
    assert work.claimed == 4


async def test_a_wake_up_during_a_backoff_ends_it(running: Running) -> None:
    running.work.claims.append(ConnectionRefusedError("database down"))
    running.start()
    assert await running.timer.asleep() == 7.0
    running.loop.wake()
    assert (await running.timer.ended()).woken
    await running.timer.asleep()
    assert running.work.claimed == 2


async def test_any_other_error_is_the_supervisors_to_handle(running: Running) -> None:
    running.work.claims.append(ValueError("a bug the claim's rows found"))
    with pytest.raises(ValueError, match="a bug"):
        await running.loop.run(running.stop)


async def test_stop_ends_a_sleep_and_a_stopped_loop_claims_nothing(running: Running) -> None:
    running.work.due_times.append(30.0)
    running.start()
    await running.timer.asleep()
    running.stop.set()
    assert (await running.timer.ended()).woken
    assert running.task is not None
    await running.task
    assert running.work.claimed == 1
    await running.loop.run(running.stop)  # already stopped: returns before claiming
    assert running.work.claimed == 1
