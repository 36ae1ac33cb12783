"""Small asyncio helpers: backoff with jitter and interruptible waits."""

from __future__ import annotations

import asyncio
import contextlib
import random


def backoff_delay(failures: int, base: float = 0.1, cap: float = 5.0) -> float:
    """Exponential backoff with ±50% jitter, so restarted replicas don't retry in lockstep."""
    return float(min(cap, base * 2 ** min(failures, 16)) * random.uniform(0.5, 1.5))


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
