"""The due-time loop: claims work whose time has come, and sleeps until the next due time in between.

Work that must happen at a time (a payment settles when its processing delay ends, a webhook is
retried when its backoff ends) lives in PostgreSQL as rows with a due time. A `DueTimeLoop` runs the
owner's claim step while work is due, then asks for the seconds to the earliest due row and sleeps
until then, so nothing polls on an interval. The owner declares only its SQL: `claim()` takes what
is due now (with `FOR UPDATE SKIP LOCKED`, so replicas never take the same row) and says how it
went; `seconds_to_next_due()` reads the earliest due time.

The rules, the same for every owner:

- a claim that took a full batch claims again at once (more may be due);
- otherwise the loop sleeps until the earliest due time (plus `margin_s`, so that the rows are due
  by the database's clock too), and at most `fallback_s`, a safety net for work that no wake-up
  announced (scheduled by a replica that died, say);
- due rows that the claim could not take (locked by another replica, or held by a limit) are
  looked at again after `busy_pause_s` rather than in a spin;
- at capacity (the claim could take nothing, by its own limits) the loop sleeps until `wake()`;
- `wake()` claims again now; `due_in(seconds)` wakes the loop only if it would sleep past that;
  a wake that arrives while a claim runs is not lost: the loop claims again at once;
- a database error backs off with jitter and tries again (wake-ups that came during the failed
  step do not cut the backoff short); anything else propagates, to the task supervisor;
- `stop` ends the loop between steps and cuts any sleep short.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import Enum

from paystream.db import DATABASE_ERRORS
from paystream.logging import get_logger
from paystream.loops import backoff_delay, wait_any

log = get_logger(__name__)

Wait = Callable[[list[asyncio.Event], float], Awaitable[None]]


class Claimed(Enum):
    """How a claim step went: what decides the loop's next wait."""

    NOTHING = "nothing"  # took no row
    SOME = "some"  # took rows, fewer than it asked for
    FULL_BATCH = "full_batch"  # took as many as it asked for: more may be due
    AT_CAPACITY = "at_capacity"  # asked for none: its own limits are reached

    @classmethod
    def of(cls, taken: int, wanted: int) -> Claimed:
        """The outcome of a claim that asked for `wanted` rows (0: no capacity) and got `taken`."""
        if wanted <= 0:
            return cls.AT_CAPACITY
        if taken >= wanted:
            return cls.FULL_BATCH
        return cls.SOME if taken > 0 else cls.NOTHING


@dataclass(frozen=True, slots=True)
class DueTiming:
    """How long a `DueTimeLoop` sleeps when the due times do not decide it."""

    # The longest sleep: a safety net for work that no wake-up announced.
    fallback_s: float
    # Due rows exist but the claim took none of them (another replica holds them, or a limit does).
    busy_pause_s: float
    # Sleep this much past the earliest due time.
    margin_s: float = 0.0


class DueTimeLoop:
    """Runs `claim()` whenever work is due, sleeping until the next due time in between."""

    def __init__(
        self,
        name: str,
        claim: Callable[[], Awaitable[Claimed]],
        seconds_to_next_due: Callable[[], Awaitable[float | None]],
        timing: DueTiming,
        *,
        wait: Wait = wait_any,
        backoff: Callable[[int], float] = backoff_delay,
    ) -> None:
        self._name = name
        self._claim = claim
        self._seconds_to_next_due = seconds_to_next_due
        self._timing = timing
        self._wait = wait
        self._backoff = backoff
        self._wake = asyncio.Event()
        self._next_check = math.inf  # loop time the loop sleeps until; inf while a step runs

    def wake(self) -> None:
        """Claim again now (there is new work, or free capacity)."""
        self._wake.set()

    def due_in(self, seconds: float) -> None:
        """Work comes due `seconds` from now: wake the loop if it would sleep past that."""
        due_at = asyncio.get_running_loop().time() + seconds
        if due_at < self._next_check:
            self._next_check = due_at
            self._wake.set()

    async def step(self) -> float:
        """Claim what is due; return how long to sleep before the next step."""
        claimed = await self._claim()
        if claimed is Claimed.FULL_BATCH:
            return 0.0
        if claimed is Claimed.AT_CAPACITY:
            return self._timing.fallback_s  # a finishing piece of work wakes the loop
        seconds = await self._seconds_to_next_due()
        if seconds is None:
            return self._timing.fallback_s
        if seconds <= 0:
            # Due now: claim again at once after progress, or give whoever holds those rows a moment.
            return 0.0 if claimed is Claimed.SOME else self._timing.busy_pause_s
        return min(seconds + self._timing.margin_s, self._timing.fallback_s)

    async def run(self, stop: asyncio.Event) -> None:
        """Claim due work until `stop` is set."""
        loop = asyncio.get_running_loop()
        failures = 0
        while not stop.is_set():
            self._next_check = math.inf
            self._wake.clear()
            try:
                sleep_s = await self.step()
                failures = 0
            except DATABASE_ERRORS as exc:
                failures += 1
                sleep_s = self._backoff(failures)
                log.warning(
                    "duetime.step_failed", loop=self._name, error=str(exc), retry_in_s=round(sleep_s, 2)
                )
                self._wake.clear()  # retry after the backoff, or on a wake-up that comes during it
            self._next_check = min(self._next_check, loop.time() + sleep_s)
            if sleep_s > 0 and not stop.is_set():
                await self._wait([stop, self._wake], sleep_s)
