"""The retry schedule: when the next attempt goes out after a failure, and when to give up."""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetrySchedule:
    """`intervals[n]` is the wait after attempt n fails (intervals[0], the first attempt, is 0)."""

    intervals: tuple[float, ...]
    jitter: float = 0.0

    @property
    def max_attempts(self) -> int:
        return len(self.intervals)

    @property
    def shortest(self) -> float:
        return min(self.intervals[1:], default=0.0)

    @property
    def longest(self) -> float:
        return max(self.intervals, default=0.0)

    def next_delay(self, attempts_made: int, retry_after_s: float | None = None) -> float | None:
        """Seconds until the next attempt after `attempts_made` attempts failed; None: give up.

        A `Retry-After` the receiver sent replaces the scheduled wait, clamped to the schedule's
        range, so a receiver can neither make us hammer it nor park a delivery for days."""
        if attempts_made >= self.max_attempts:
            return None
        if retry_after_s is not None:
            return min(max(retry_after_s, self.shortest), self.longest)
        delay = self.intervals[attempts_made]
        if self.jitter:
            delay *= random.uniform(1 - self.jitter, 1 + self.jitter)
        return delay


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta-seconds or an HTTP date); None when absent or bad."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())
