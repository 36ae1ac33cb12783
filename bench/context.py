"""What a scenario works with (`BenchContext`) and what it hands back (`ScenarioResult`).

`closed_loop()` runs the load generator as separate processes and merges what they measured; every
scenario that drives HTTP load uses it, so baselines and platform runs share one client.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from bench.params import BenchParams
from bench.platform import Platform
from bench.quiesce import Settled, settle
from bench.stats import LatencySeries
from bench.usage import CpuMeter

Figure = float | int | None


@dataclass(frozen=True, slots=True)
class Check:
    """One end-of-run count against PostgreSQL or a receiver: what should be there and what is."""

    name: str
    expected: int
    found: int
    lost: int
    duplicated: int
    detail: str = ""


@dataclass(slots=True)
class ScenarioResult:
    name: str
    # Top-level keys of latest.json (ingest_rps, e2e_p99_ms, ...).
    figures: dict[str, Figure] = field(default_factory=dict)
    # Everything else worth keeping: failures, drain waits, CPU per process, percentiles.
    details: dict[str, Any] = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    # Latency over time, for the plot.
    series: list[LatencySeries] = field(default_factory=list)


@dataclass(slots=True)
class LoadResult:
    """A closed-loop run, merged over its load-generator processes."""

    ok: int
    rps: float
    elapsed_s: float
    failures: Counter[str]
    series: LatencySeries
    # namespace -> request indexes answered with the expected status
    ok_keys: dict[str, list[int]]
    client_cpu_cores: float

    def summary(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "rps": round(self.rps, 1),
            "elapsed_s": round(self.elapsed_s, 2),
            "failures": dict(self.failures),
            "client_cpu_cores": round(self.client_cpu_cores, 2),
            **self.series.summary(),
        }


@dataclass
class BenchContext:
    params: BenchParams
    platform: Platform
    run_id: str
    workdir: Path
    _runs: int = field(default=0, init=False)

    def namespace(self, label: str) -> str:
        """Ids unique to this run and this scenario (no two runs share a database, but be explicit)."""
        return f"{self.run_id}{label}"

    async def settle(self) -> Settled:
        self.platform.check_alive()
        return await settle(self.platform.db(), self.platform.bus(), self.params.settle_timeout_s)

    def cpu_meter(self) -> CpuMeter:
        pids = {name: child.pid for name, child in self.platform.services.items()}
        stores = self.platform.stores
        if stores.postgres_server is not None and stores.postgres_server.process is not None:
            pids["postgres"] = stores.postgres_server.process.pid
        if stores.redis_server is not None and stores.redis_server.process is not None:
            pids["redis"] = stores.redis_server.process.pid
        for child in (self.platform.bare, self.platform.receiver):
            if child is not None:
                pids[child.name] = child.pid
        return CpuMeter(pids)

    async def closed_loop(
        self,
        name: str,
        *,
        url: str,
        kind: str,
        namespace: str,
        secret: str,
        expect_status: int,
        concurrency: int | None = None,
    ) -> LoadResult:
        """Drive `url` with `params.clients` load-generator processes sharing `concurrency` connections."""
        total = concurrency or self.params.concurrency
        clients = max(1, min(self.params.clients, total))
        runs = []
        for index in range(clients):
            share = total // clients + (1 if index < total % clients else 0)
            spec = {
                "url": url,
                "kind": kind,
                "namespace": f"{namespace}c{index}",
                "secret": secret,
                "concurrency": share,
                "duration_s": self.params.duration_s,
                "warmup_s": self.params.warmup_s,
                "expect_status": expect_status,
            }
            runs.append(self._loadgen(f"{name}-{index}", spec))
        outputs = await asyncio.gather(*runs)
        series = LatencySeries(name)
        failures: Counter[str] = Counter()
        ok_keys: dict[str, list[int]] = {}
        for output in outputs:
            series.extend(output["started_at"], output["latency_ms"])
            failures.update(output["failures"])
            ok_keys[output["namespace"]] = output["ok_keys"]
        return LoadResult(
            ok=sum(output["ok"] for output in outputs),
            rps=sum(output["ok"] / output["elapsed_s"] for output in outputs if output["elapsed_s"] > 0),
            elapsed_s=max(output["elapsed_s"] for output in outputs),
            failures=failures,
            series=series,
            ok_keys=ok_keys,
            client_cpu_cores=sum(output["cpu_cores"] for output in outputs),
        )

    async def _loadgen(self, label: str, spec: dict[str, Any]) -> dict[str, Any]:
        self._runs += 1
        spec_path = self.workdir / f"loadgen-{self._runs}-{label}.json"
        result_path = spec_path.with_suffix(".result.json")
        spec_path.write_bytes(orjson.dumps(spec))
        child = self.platform.children.python(
            f"loadgen-{self._runs}-{label}", ["-m", "bench.loadgen", str(spec_path), str(result_path)]
        )
        timeout = spec["warmup_s"] + spec["duration_s"] + 60
        started = time.monotonic()
        try:
            code = await child.wait(timeout)
        finally:
            child.stop(timeout=5)
        if code != 0 or not result_path.exists():
            raise RuntimeError(
                f"load generator {label} failed (exit {code} after {time.monotonic() - started:.1f}s):\n{child.tail()}"
            )
        result: dict[str, Any] = orjson.loads(result_path.read_bytes())
        return result
