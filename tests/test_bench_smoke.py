"""`make bench` end to end with tiny parameters, and its pieces that need no platform.

The slow tests run `python -m bench` as a real process (embedded Redis and PostgreSQL, the four
services, the load generators) for about a second per scenario and check what it records, and that
it leaves no process behind, after a normal run and after Ctrl-C.
"""

from __future__ import annotations

import os
import signal
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import orjson
import psutil  # type: ignore[import-untyped]
import pytest
import uuid_utils

from bench.plot import bucket_percentiles, latency_plot
from bench.report import REQUIRED_KEYS
from bench.stats import LatencySeries, percentile
from paystream_devstack.cluster import DEBIAN_PACKAGE, missing_binaries

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = "PAYSTREAM_BENCH_SMOKE_MARKER"
TINY = [
    "--duration", "1", "--warmup", "0.2", "--concurrency", "8",
    "--e2e-rate", "50", "--e2e-ladder", "30,50", "--e2e-duration", "1", "--e2e-sockets", "2",
    "--dispatch-count", "200", "--dispatch-concurrency", "8", "--settle-timeout", "20",
]  # fmt: skip
RATES = ("baseline_http_rps", "ingest_rps", "create_payment_rps", "dispatch_rps", "baseline_client_rps")
LATENCIES = (
    "ingest_p50_ms",
    "ingest_p99_ms",
    "create_payment_p50_ms",
    "create_payment_p99_ms",
    "e2e_p50_ms",
    "e2e_p99_ms",
)
RATIOS = ("ingest_ratio", "create_payment_ratio", "dispatch_ratio")


def bench_env(marker: str) -> dict[str, str]:
    """Our environment with a marker every child inherits, and no store URLs: embedded stores."""
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "DATABASE_URL")}
    env[MARKER] = marker
    return env


def marked_processes(marker: str) -> list[str]:
    """Processes still running with our marker in their environment."""
    found = []
    for process in psutil.process_iter(["pid", "name"]):
        try:
            if process.environ().get(MARKER) == marker:
                found.append(f"{process.pid} {process.name()}")
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return found


def run_bench(args: list[str], marker: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *args],
        cwd=REPO_ROOT,
        env=bench_env(marker),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_bench_records_every_figure_and_loses_nothing(tmp_path: Path) -> None:
    marker = uuid_utils.uuid4().hex
    completed = run_bench([*TINY, "--results-dir", str(tmp_path)], marker, timeout=110)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    record = orjson.loads((tmp_path / "latest.json").read_bytes())
    missing = [key for key in REQUIRED_KEYS if key not in record]
    assert not missing, f"latest.json lacks {missing}"
    for key in RATES:
        assert isinstance(record[key], float) and record[key] > 0, (key, record[key])
    for key in LATENCIES:
        assert isinstance(record[key], float) and 0 < record[key] < 60_000, (key, record[key])
    for key in RATIOS:
        assert isinstance(record[key], float) and 0 < record[key] < 10, (key, record[key])
    assert record["e2e_rate"] == 50
    # The ladder climbs 30/s then the headline 50/s; capacity is one of them (or none kept up).
    ladder = record["scenarios"]["e2e"]["ladder"]
    assert [rung["rate"] for rung in ladder] == [30, 50]
    assert all(rung["cpu_ms_per_event"]["total"] > 0 for rung in ladder)
    assert record["e2e_capacity_rps"] in (0, 30, 50)
    assert record["e2e_cpu_ms_per_event"] == ladder[1]["cpu_ms_per_event"]["total"]
    # Every hop of the headline rung's events is traced from the stores' timestamps.
    trace = record["scenarios"]["e2e"]["trace"]
    assert trace["traced"]["events"] > 0
    assert all(
        trace[hop]["p50_ms"] is not None for hop in ("api_intake", "ingest_commit_to_processor", "total")
    )
    assert record["lost"] == 0 and record["duplicated"] == 0, record["checks"]
    assert {check["name"].split(":")[0].split()[0] for check in record["checks"]} == {
        "e2e", "dispatch", "create_payment", "ingest",
    }  # fmt: skip
    assert all(check["expected"] > 0 and check["found"] == check["expected"] for check in record["checks"])
    machine = record["machine"]
    assert machine["cores"] >= 1 and machine["redis"] and machine["postgresql"] and machine["python"]
    assert machine["single_core_probe_ms_at_start"] > 0 and machine["single_core_probe_ms_at_end"] > 0
    assert 0 <= machine["cpu_steal_share"] < 1
    assert record["parameters"]["duration_s"] == 1 and record["parameters"]["concurrency"] == 8
    # Ingest alternates with the bare baseline; its figures are the medians of the rounds.
    rounds = record["scenarios"]["ingest"]["rounds"]
    assert len(rounds) == record["parameters"]["rounds"] == 3
    median_ratio = statistics.median(r["ingest_rps"] / r["baseline_http_rps"] for r in rounds)
    assert abs(record["ingest_ratio"] - median_ratio) < 0.002, (record["ingest_ratio"], rounds)
    assert record["baseline_http_rps"] == statistics.median(r["baseline_http_rps"] for r in rounds)
    # The API's relay is the last resort: with the processor and the dispatcher up, one of them leads.
    leader = record["scenarios"]["ingest"]["outbox_relay_leader"]
    assert leader in ("payment-processor outbox relay", "webhook-dispatcher outbox relay"), leader
    assert (tmp_path / "latest.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert (tmp_path / "latest-ladder.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert "lost" in completed.stdout and "stopped every process" in completed.stdout
    assert marked_processes(marker) == []


@pytest.mark.slow
def test_bench_shards_measures_each_shard_count_on_a_local_cluster(tmp_path: Path) -> None:
    if missing_binaries():
        pytest.skip(f"{missing_binaries()} not found: install the Debian package {DEBIAN_PACKAGE}")
    marker = uuid_utils.uuid4().hex
    args = ["--shards", "1,3", "--shard-events", "300", "--results-dir", str(tmp_path)]
    completed = run_bench(args, marker, timeout=110)
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    record = orjson.loads((tmp_path / "shards.json").read_bytes())
    one, three = record["runs"]
    assert (one["shards"], three["shards"]) == (1, 3)
    for run in (one, three):
        assert run["lost"] == 0 and run["published"] == run["events"] == 300, run
        assert run["throughput_eps"] > 0 and run["window_s"] > 0
        # Three masters measured, each shard drained by both groups.
        assert len(run["redis_cpu_by_master"]) == 3
        assert set(run["service_cpu_by_service"]) >= {"api", "processor", "dispatcher", "notifier"}
        assert run["load_average_after"] is None or len(run["load_average_after"]) == 3
        for shard in run["per_shard"].values():
            assert all(rate and rate > 0 for rate in shard["consumer_eps"].values()), shard
            assert set(shard["consumer_eps"]) == {"payment-processor", "webhook-dispatcher"}
    assert list(one["per_shard"]) == ["payment:events"]
    assert list(three["per_shard"]) == ["payment:events:{0}", "payment:events:{1}", "payment:events:{2}"]
    assert len({shard["master_port"] for shard in three["per_shard"].values()}) == 3
    assert "events/s" in completed.stdout
    assert marked_processes(marker) == []


@pytest.mark.slow
def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    marker = uuid_utils.uuid4().hex
    bench = subprocess.Popen(
        [sys.executable, "-m", "bench", *TINY, "--e2e-duration", "30", "--results-dir", str(tmp_path)],
        cwd=REPO_ROOT,
        env=bench_env(marker),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert bench.stdout is not None
        for line in bench.stdout:  # until the e2e run has started its driver
            if "e2e ..." in line:
                break
        time.sleep(2)
        assert len(marked_processes(marker)) > 5  # stores, services, receiver, driver
        bench.send_signal(signal.SIGINT)
        output, _ = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert bench.returncode == 130, output
    assert "stopped every process" in output
    assert marked_processes(marker) == []
    assert not (tmp_path / "latest.json").exists()


def test_the_plot_is_a_png_with_a_panel_per_series(tmp_path: Path) -> None:
    measured, empty = LatencySeries("create_payment"), LatencySeries("idle")
    measured.extend([0.0, 0.5, 1.0, 1.5], [3.0, 1.0, 200.0, 2.0])
    path = tmp_path / "plot.png"
    latency_plot([measured, empty], path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width == 1000 and height == 2 * 260  # one 10 x 2.6 inch panel per series, at 100 dpi
    assert bucket_percentiles([0.0, 0.5, 1.0], [3.0, 1.0, 2.0], 1.0)[0][1:] == (3.0, 3.0)


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) is None
    series = LatencySeries("x")
    series.extend([0.0, 1.0, 2.0], [3.0, 1.0, 2.0])
    assert series.summary()["p50_ms"] == 2.0 and series.summary()["max_ms"] == 3.0
