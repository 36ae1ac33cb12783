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
import zlib
from pathlib import Path

import orjson
import psutil  # type: ignore[import-untyped]
import pytest
import uuid_utils

from bench.png import Canvas
from bench.report import REQUIRED_KEYS
from bench.stats import LatencySeries, percentile

REPO_ROOT = Path(__file__).resolve().parents[1]
MARKER = "PAYSTREAM_BENCH_SMOKE_MARKER"
TINY = [
    "--duration", "1", "--warmup", "0.2", "--concurrency", "8",
    "--e2e-rate", "50", "--e2e-duration", "1", "--e2e-sockets", "2",
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
    assert record["lost"] == 0 and record["duplicated"] == 0, record["checks"]
    assert {check["name"].split(":")[0] for check in record["checks"]} == {
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
    assert "lost" in completed.stdout and "stopped every process" in completed.stdout
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


def test_png_is_valid_and_holds_the_pixels() -> None:
    canvas = Canvas(7, 3)
    canvas.line(0, 0, 6, 2, (255, 0, 0))
    data = canvas.encode()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks = {}
    offset = 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        chunks[kind] = body
        offset += 12 + length
    assert struct.unpack(">IIBBBBB", chunks[b"IHDR"]) == (7, 3, 8, 2, 0, 0, 0)
    rows = zlib.decompress(chunks[b"IDAT"])
    assert len(rows) == 3 * (1 + 7 * 3)
    assert rows[1:4] == b"\xff\x00\x00"  # the line starts at the top-left pixel
    assert rows[-3:] == b"\xff\x00\x00"  # and ends at the bottom-right one
    assert rows[1 + 3 * 3 : 1 + 3 * 4] == b"\xff\xff\xff"  # (3, 0) is off the line


def test_percentiles_are_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile(values, 1.0) == 100.0
    assert percentile([], 0.5) is None
    series = LatencySeries("x")
    series.extend([0.0, 1.0, 2.0], [3.0, 1.0, 2.0])
    assert series.summary()["p50_ms"] == 2.0 and series.summary()["max_ms"] == 3.0
