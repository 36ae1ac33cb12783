"""Sliding-window rate limits, in memory, for what is cheap to count where it happens.

A `RateLimiter` counts hits per key (an API key, a client address) within a window and says how long
a key that is over its limit must wait (`Retry-After`). It lives in the process: with several
replicas each counts its own share, which bounds abuse per replica without a round trip per request.
The number of keys kept is bounded (the least recently hit are forgotten first), so a flood of
distinct keys costs memory only up to that bound.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable

from paystream.errors import ApiError

DEFAULT_MAX_KEYS = 100_000


class RateLimitedError(ApiError):
    """429, with the seconds to wait in `retry_after_s` (sent as `Retry-After`)."""

    status = 429
    code = "RATE_LIMITED"

    def __init__(self, description: str, *, retry_after_s: float, field: str | None = None) -> None:
        super().__init__(description, field=field)
        self.retry_after_s = retry_after_s

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after_s)))}


class RateLimiter:
    """At most `limit` hits per key within `window_s` seconds."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_keys: int = DEFAULT_MAX_KEYS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if limit < 1 or window_s <= 0:
            raise ValueError("a rate limit needs a positive limit and window")
        self.limit = limit
        self.window_s = window_s
        self._max_keys = max_keys
        self._clock = clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, key: str) -> float | None:
        """Seconds until `key` may be hit again, or None when it is under its limit."""
        hits = self._recent(key)
        if hits is None or len(hits) < self.limit:
            return None
        return max(0.0, hits[0] + self.window_s - self._clock())

    def hit(self, key: str) -> None:
        """Count one hit of `key`."""
        hits = self._recent(key)
        if hits is None:
            hits = deque()
            self._hits[key] = hits
            while len(self._hits) > self._max_keys:
                self._hits.popitem(last=False)
        else:
            self._hits.move_to_end(key)
        hits.append(self._clock())
        while len(hits) > self.limit:
            hits.popleft()

    def check_and_hit(self, key: str) -> float | None:
        """Count a hit unless `key` is over its limit; the seconds to wait when it is."""
        wait = self.retry_after(key)
        if wait is None:
            self.hit(key)
        return wait

    def forget(self, key: str) -> None:
        self._hits.pop(key, None)

    def _recent(self, key: str) -> deque[float] | None:
        hits = self._hits.get(key)
        if hits is None:
            return None
        horizon = self._clock() - self.window_s
        while hits and hits[0] <= horizon:
            hits.popleft()
        return hits
