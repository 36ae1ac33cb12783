"""Latency series and their percentiles."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (`q` in 0..1); None without values."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q * len(ordered)))
    return float(ordered[min(rank, len(ordered)) - 1])


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(slots=True)
class LatencySeries:
    """One scenario's measured requests: when each started (monotonic s) and how long it took (ms)."""

    name: str
    started_at: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    _sorted: list[float] | None = field(default=None, init=False, repr=False)

    def extend(self, started_at: Sequence[float], latency_ms: Sequence[float]) -> None:
        self.started_at.extend(started_at)
        self.latency_ms.extend(latency_ms)
        self._sorted = None

    def quantile(self, q: float) -> float | None:
        if self._sorted is None:
            self._sorted = sorted(self.latency_ms)
        return percentile(self._sorted, q)

    def summary(self) -> dict[str, float | int | None]:
        return {
            "count": len(self.latency_ms),
            "p50_ms": rounded(self.quantile(0.50)),
            "p90_ms": rounded(self.quantile(0.90)),
            "p99_ms": rounded(self.quantile(0.99)),
            "p999_ms": rounded(self.quantile(0.999)),
            "max_ms": rounded(max(self.latency_ms)) if self.latency_ms else None,
        }
