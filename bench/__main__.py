"""`python -m bench` (`make bench`; flags through BENCH_ARGS): boot, measure, record, stop.

    make bench
    make bench BENCH_ARGS="--duration 10 --concurrency 128"
    make bench BENCH_ARGS="--only e2e --e2e-rate 1000"
    make bench BENCH_ARGS="--shards 1,2,3"   # the bus on a local Redis Cluster, by shard count

Prints a table, writes bench/results/latest.json and latest.png. Exit code 0 when the run completed
(whatever the figures), 1 when it could not, 130 when interrupted; every process it started is
stopped in each case. Run `python -m bench --help` for every flag.
"""

from __future__ import annotations

import asyncio
import shutil
import signal
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import uuid_utils
import uvloop

from bench import machine, report, scenarios
from bench.context import BenchContext, ScenarioResult
from bench.params import BenchParams, parse_params
from bench.platform import Platform
from bench.stores import BenchSetupError


def say(text: str) -> None:
    print(f"bench | {text}", flush=True)


def _one_line(result: ScenarioResult) -> str:
    figures = ", ".join(f"{key} {value}" for key, value in result.figures.items())
    problems = sum(check.lost + check.duplicated for check in result.checks)
    return f"{result.name}: {figures}" + (f" (lost + duplicated: {problems})" if problems else "")


async def measure(params: BenchParams, platform: Platform, workdir: Path) -> int:
    started_at = datetime.now(UTC)
    say(f"booting the platform (work directory {workdir})")
    await platform.start()
    stores = platform.stores
    say(
        f"platform up in {platform.boot_s:.1f}s: Redis {stores.redis_origin}, PostgreSQL "
        f"{stores.postgres_origin}, API {platform.api_url}, notifier {platform.notifier_url}"
    )
    host = await machine.describe(platform.db(), platform.bus())
    cpu_before = machine.cpu_times()
    ctx = BenchContext(params, platform, uuid_utils.uuid4().hex[:6], workdir)
    results: list[ScenarioResult] = []
    for name, runner in scenarios.selected(params):
        say(f"{name} ...")
        scenario_started = time.monotonic()
        result = await runner(ctx)
        results.append(result)
        say(f"{_one_line(result)} [{time.monotonic() - scenario_started:.1f}s]")
    host["load_average_at_end"] = machine.load_average()
    host["single_core_probe_ms_at_end"] = machine.single_core_probe_ms()
    host["cpu_steal_share"] = machine.steal_share(cpu_before, machine.cpu_times())
    record = report.build_record(
        results,
        machine=host,
        parameters=params.to_record(),
        run={
            "started_at": started_at.isoformat(),
            "wall_s": round((datetime.now(UTC) - started_at).total_seconds(), 1),
            "boot_s": round(platform.boot_s, 1),
            "redis": stores.redis_origin,
            "postgresql": stores.postgres_origin,
        },
    )
    json_path, png_path = report.write_results(record, results, params.results_dir)
    print("\n" + report.format_table(record) + "\n", flush=True)
    say(f"wrote {json_path} and {png_path}")
    return 0


async def run(params: BenchParams) -> int:
    """Measure, and stop everything afterwards: after an error, Ctrl-C or SIGTERM too."""
    main_task = asyncio.current_task()
    assert main_task is not None
    interrupted = False

    def on_signal() -> None:
        nonlocal interrupted
        if interrupted:
            say("still stopping; every process is being shut down")
            return
        interrupted = True
        say("interrupted: stopping every process")
        main_task.cancel()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    workdir = Path(tempfile.mkdtemp(prefix="paystream-bench-"))
    if params.shards:
        return await _run_shards(params, workdir, main_task, lambda: interrupted)
    platform = Platform(params, workdir)
    try:
        return await measure(params, platform, workdir)
    except asyncio.CancelledError:
        if not interrupted:
            raise
        main_task.uncancel()
        return 130
    except BenchSetupError as exc:
        say(f"cannot start: {exc}")
        return 1
    except Exception:
        say("the run failed:")
        traceback.print_exc()
        print(platform.log_tails(), file=sys.stderr)
        return 1
    finally:
        stopping = time.monotonic()
        await platform.close()
        say(f"stopped every process in {time.monotonic() - stopping:.1f}s")
        if params.keep_workdir:
            say(f"kept {workdir}")


async def _run_shards(
    params: BenchParams, workdir: Path, main_task: asyncio.Task[object], interrupted: Callable[[], bool]
) -> int:
    from bench.shards import run_shards

    try:
        return await run_shards(params, workdir, say)
    except asyncio.CancelledError:
        if not interrupted():
            raise
        main_task.uncancel()
        return 130
    except Exception:
        say("the run failed:")
        traceback.print_exc()
        return 1
    finally:
        if not params.keep_workdir:
            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: Sequence[str] | None = None) -> int:
    params = parse_params(argv)
    return uvloop.run(run(params))


if __name__ == "__main__":
    sys.exit(main())
