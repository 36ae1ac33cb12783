"""CPU used by each part of the platform while a scenario runs, in cores (CPU seconds per second).

On a 2-core machine the services, the stores and the load generator share the same cores, so a
figure only reads right next to who was using them.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import psutil  # type: ignore[import-untyped]


def _cpu_seconds(process: psutil.Process, with_children: bool) -> float:
    """CPU seconds of `process`; with its children, also of the live ones and of those that have
    exited (a PostgreSQL backend that ends leaves its time in the postmaster's `children_*`)."""
    total = 0.0
    with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
        times = process.cpu_times()
        total += times.user + times.system
        if with_children:
            total += times.children_user + times.children_system
    if with_children:
        for member in process.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                times = member.cpu_times()
                total += times.user + times.system
    return total


@dataclass
class CpuMeter:
    """Samples the CPU time of named processes (with their children: PostgreSQL's backends)."""

    pids: Mapping[str, int]
    _processes: dict[str, psutil.Process] = field(default_factory=dict, init=False)
    _start: dict[str, float] = field(default_factory=dict, init=False)
    _started_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        for name, pid in self.pids.items():
            with contextlib.suppress(psutil.NoSuchProcess):
                self._processes[name] = psutil.Process(pid)

    def _sample(self) -> dict[str, float]:
        return {name: _cpu_seconds(process, name == "postgres") for name, process in self._processes.items()}

    def start(self) -> None:
        self._started_at = time.monotonic()
        self._start = self._sample()

    def seconds(self) -> dict[str, float]:
        """CPU seconds each process used since `start()`."""
        now = self._sample()
        return {name: max(0.0, now[name] - self._start.get(name, 0.0)) for name in now}

    def cores(self) -> dict[str, float]:
        """Cores used by each process since `start()`."""
        elapsed = time.monotonic() - self._started_at
        if elapsed <= 0:
            return {}
        now = self._sample()
        return {name: round(max(0.0, now[name] - self._start.get(name, 0.0)) / elapsed, 2) for name in now}
