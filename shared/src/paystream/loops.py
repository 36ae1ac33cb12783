"""Stop-aware loops: the one way a background loop of the platform waits, retries and backs off.

Every long-running loop (a consumer's reader and sweeper, the outbox relay, a heartbeat, a cache
refresh, a purge) is one `step()` run by `run_until_stopped` until its `stop` event is set:

- after a step succeeds, the loop waits `interval_s` (or what the step returned: a number of
  seconds, or `AGAIN` for "more work is waiting, go again at once"); the wait ends early when
  `stop` is set, or when `wake` is, and a step is never cancelled by the helper: `stop` ends the
  loop after the step in progress returns (the owner's grace period and cancel bound that);
- a step that fails with one of the expected kinds (`retry_on`: by default PostgreSQL or Redis
  unreachable) is logged as a warning with the delay, and the loop backs off with jitter; any other
  exception is logged with its traceback and backed off the same way: it never ends the loop, since
  a bug that one input triggers must not leave the service without the loop (the supervisor only
  restarts a loop whose exception escapes). The backoff resets after a success, which is logged
  once (`<name>_recovered`) so that an outage's end shows in the logs like its beginning;
- `asyncio.CancelledError` always propagates.

`retry_until_ready` is the start-up counterpart: it retries one call until it succeeds, retrying
only the expected kinds of failure (anything else is a fault to report, not an outage to wait out).

`Backoff` is the one backoff policy (exponential, capped, ±50% jitter so replicas restarted together
don't retry in lockstep), also used by the mechanisms that retry in their own way: the supervisor's
restarts, a consumer's handler retries and its acknowledgements.

Log events are named after the loop: `<name>_failed` (an expected failure), `<name>_error` (anything
else, with its traceback) and `<name>_recovered`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Final, TypeVar, overload

import structlog

from paystream.db import DATABASE_UNAVAILABLE_ERRORS
from paystream.redis import REDIS_UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

T = TypeVar("T")
ExceptionKinds = tuple[type[BaseException], ...]

# PostgreSQL or Redis unreachable: an outage to wait out, not a fault of the loop's own.
STORE_UNAVAILABLE_ERRORS: ExceptionKinds = (*DATABASE_UNAVAILABLE_ERRORS, *REDIS_UNAVAILABLE_ERRORS)


class Again(Enum):
    AGAIN = "again"


AGAIN: Final = Again.AGAIN
"""What a step returns when more work is waiting: the loop runs it again at once, without a wait."""

# None: wait the loop's `interval_s`; a number: wait that many seconds; AGAIN: no wait.
StepResult = float | Again | None
Step = Callable[[], Awaitable[StepResult]]


def backoff_delay(failures: int, base: float = 0.1, cap: float = 5.0) -> float:
    """Exponential backoff with ±50% jitter, so restarted replicas don't retry in lockstep."""
    return float(min(cap, base * 2 ** min(failures, 16)) * random.uniform(0.5, 1.5))


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait after the n-th failure in a row: `base_s * 2**n`, capped at `cap_s`, ±50%."""

    base_s: float = 0.1
    cap_s: float = 5.0

    def delay(self, failures: int) -> float:
        return backoff_delay(failures, self.base_s, self.cap_s)


DEFAULT_BACKOFF: Final = Backoff()


async def wait_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep up to `seconds`, returning early (True) when `stop` is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()


async def wait_any(events: list[asyncio.Event], seconds: float) -> None:
    """Wait until any of `events` is set, or `seconds` pass."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


async def run_until_stopped(
    name: str,
    step: Step,
    stop: asyncio.Event,
    *,
    interval_s: float = 0.0,
    first_wait_s: float = 0.0,
    wake: asyncio.Event | None = None,
    linger_s: float = 0.0,
    retry_on: ExceptionKinds = STORE_UNAVAILABLE_ERRORS,
    backoff: Backoff = DEFAULT_BACKOFF,
    log_fields: Mapping[str, object] | None = None,
) -> None:
    """Run `step()` until `stop` is set (see the module docstring for the rules).

    `interval_s` is the wait after a step that returned None (0: none, the step paces itself).
    `first_wait_s` delays the first step (a periodic job that need not run at start-up). `wake`,
    cleared before each step, cuts a wait after a success short when set (never a backoff: a burst
    of wakes must not defeat it); `linger_s` then waits a little longer so that the work of a busy
    moment is taken in one step. `log_fields` are added to the loop's log lines.
    """
    fields = dict(log_fields or {})
    failures = 0
    if first_wait_s > 0 and await _pause(stop, wake, first_wait_s):
        return
    while not stop.is_set():
        if wake is not None:
            wake.clear()
        try:
            outcome = await step()
        except asyncio.CancelledError:
            raise
        except retry_on as exc:
            failures += 1
            delay = backoff.delay(failures)
            log.warning(
                f"{name}_failed",
                error=_describe(exc),
                failures=failures,
                retry_in_s=round(delay, 3),
                **fields,
            )
        except Exception:
            failures += 1
            delay = backoff.delay(failures)
            log.exception(f"{name}_error", failures=failures, retry_in_s=round(delay, 3), **fields)
        else:
            if failures:
                log.info(f"{name}_recovered", after_failures=failures, **fields)
                failures = 0
            wait_s = interval_s if outcome is None else outcome
            if wait_s is AGAIN or wait_s <= 0:
                await asyncio.sleep(0)  # a step that found work without suspending must not starve the rest
                continue
            if await _pause(stop, wake, wait_s):
                return
            if linger_s > 0 and await wait_or_stop(stop, linger_s):
                return
            continue
        if await wait_or_stop(stop, delay):
            return


@overload
async def retry_until_ready(
    name: str,
    attempt: Callable[[], Awaitable[T]],
    stop: None = None,
    *,
    retry_on: ExceptionKinds = ...,
    backoff: Backoff = ...,
    deadline_s: float | None = ...,
    log_fields: Mapping[str, object] | None = ...,
) -> T: ...


@overload
async def retry_until_ready(
    name: str,
    attempt: Callable[[], Awaitable[T]],
    stop: asyncio.Event,
    *,
    retry_on: ExceptionKinds = ...,
    backoff: Backoff = ...,
    deadline_s: float | None = ...,
    log_fields: Mapping[str, object] | None = ...,
) -> T | None: ...


async def retry_until_ready(
    name: str,
    attempt: Callable[[], Awaitable[T]],
    stop: asyncio.Event | None = None,
    *,
    retry_on: ExceptionKinds = STORE_UNAVAILABLE_ERRORS,
    backoff: Backoff = DEFAULT_BACKOFF,
    deadline_s: float | None = None,
    log_fields: Mapping[str, object] | None = None,
) -> T | None:
    """`await attempt()` until it succeeds, and return its result; None when `stop` is set first.

    A failure of the `retry_on` kinds is logged (`<name>_failed`) and retried after a backoff; once
    `deadline_s` has passed since the first attempt, it is raised instead. Any other exception
    propagates at once. Without `stop`, the waits are plain sleeps (start-up, before there is one).
    """
    fields = dict(log_fields or {})
    loop = asyncio.get_running_loop()
    deadline = None if deadline_s is None else loop.time() + deadline_s
    failures = 0
    while stop is None or not stop.is_set():
        try:
            return await attempt()
        except retry_on as exc:
            failures += 1
            if deadline is not None and loop.time() > deadline:
                raise
            delay = backoff.delay(failures)
            log.warning(
                f"{name}_failed",
                error=_describe(exc),
                failures=failures,
                retry_in_s=round(delay, 3),
                **fields,
            )
        if stop is None:
            await asyncio.sleep(delay)
        elif await wait_or_stop(stop, delay):
            break
    return None


async def _pause(stop: asyncio.Event, wake: asyncio.Event | None, seconds: float) -> bool:
    """Wait `seconds`, or until `stop` (or `wake`) is set; True when the loop is to stop."""
    if wake is None:
        return await wait_or_stop(stop, seconds)
    await wait_any([stop, wake], seconds)
    return stop.is_set()


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__
