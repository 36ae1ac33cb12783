"""The closed-loop load generator: a separate process, N keep-alive connections, a fixed duration.

    python -m bench.loadgen SPEC.json RESULT.json

Each of `concurrency` workers sends request after request (the next one as soon as the previous one
is answered) for `warmup_s` (unmeasured, ids in a namespace of their own) and then for `duration_s`,
recording every measured request's start time (CLOCK_MONOTONIC, comparable across processes) and
latency. The same generator drives the bare baselines and the platform, so the client's own cost is
the same on both sides of every ratio.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import uvloop

from bench.payloads import RequestFactory, request_factory

REQUEST_TIMEOUT_S = 30.0


@dataclass(frozen=True, slots=True)
class LoadSpec:
    url: str
    kind: str
    namespace: str
    secret: str
    concurrency: int
    duration_s: float
    warmup_s: float
    expect_status: int

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> LoadSpec:
        return cls(**raw)


@dataclass(slots=True)
class Recorder:
    """Measured requests: start times, latencies and the indexes of those answered as expected."""

    started_at: list[float] = field(default_factory=list)
    latency_ms: list[float] = field(default_factory=list)
    ok_keys: list[int] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)


def unpin() -> None:
    """Run on every core this machine has, whatever affinity the parent was started with."""
    with contextlib.suppress(OSError, AttributeError):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))


async def _phase(
    session: aiohttp.ClientSession,
    spec: LoadSpec,
    build: RequestFactory,
    seconds: float,
    recorder: Recorder | None,
) -> float:
    """Run the workers for `seconds`; returns the phase's wall time (until the last answer)."""
    counter = iter(range(sys.maxsize))
    started = time.monotonic()
    deadline = started + seconds

    async def worker() -> None:
        while time.monotonic() < deadline:
            n = next(counter)
            body, headers = build(n)
            sent = time.monotonic()
            try:
                async with session.post(spec.url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                if recorder is not None:
                    recorder.failures[f"error:{type(exc).__name__}"] += 1
                continue
            if recorder is None:
                continue
            if status == spec.expect_status:
                recorder.started_at.append(sent)
                recorder.latency_ms.append((time.monotonic() - sent) * 1000)
                recorder.ok_keys.append(n)
            else:
                recorder.failures[f"http:{status}"] += 1

    await asyncio.gather(*(worker() for _ in range(spec.concurrency)))
    return time.monotonic() - started


async def run(spec: LoadSpec) -> dict[str, Any]:
    connector = aiohttp.TCPConnector(limit=spec.concurrency, limit_per_host=0, force_close=False)
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)
    recorder = Recorder()
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()
    ) as session:
        if spec.warmup_s > 0:
            warm = request_factory(spec.kind, f"{spec.namespace}w", spec.secret)
            await _phase(session, spec, warm, spec.warmup_s, None)
        cpu_before = _cpu_seconds()
        phase_started = time.monotonic()
        build = request_factory(spec.kind, spec.namespace, spec.secret)
        elapsed = await _phase(session, spec, build, spec.duration_s, recorder)
        cpu_used = _cpu_seconds() - cpu_before
    return {
        "namespace": spec.namespace,
        "ok": len(recorder.ok_keys),
        "failures": dict(recorder.failures),
        "phase_started_at": phase_started,
        "elapsed_s": elapsed,
        "cpu_cores": cpu_used / elapsed if elapsed > 0 else 0.0,
        "started_at": recorder.started_at,
        "latency_ms": recorder.latency_ms,
        "ok_keys": recorder.ok_keys,
    }


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.loadgen SPEC.json RESULT.json", file=sys.stderr)
        return 2
    unpin()
    spec = LoadSpec.from_dict(orjson.loads(Path(argv[0]).read_bytes()))
    result = uvloop.run(run(spec))
    Path(argv[1]).write_bytes(orjson.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
