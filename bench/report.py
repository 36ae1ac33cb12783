"""The run's record (latest.json), its table on the terminal, and its plot (latest.png).

Figures only: the goals of issue 18 are printed beside them (goal / met columns), but nothing here
fails a run for being slow. `lost` and `duplicated` are the sums over every scenario's checks.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.context import Figure, ScenarioResult
from bench.plot import ladder_plot, latency_plot

# Every key latest.json carries at the top level, measured or not (None) in this run.
REQUIRED_KEYS: tuple[str, ...] = (
    "baseline_http_rps",
    "ingest_rps",
    "ingest_p50_ms",
    "ingest_p99_ms",
    "ingest_ratio",
    "create_payment_rps",
    "create_payment_p50_ms",
    "create_payment_p99_ms",
    "create_payment_ratio",
    "e2e_rate",
    "e2e_p50_ms",
    "e2e_p99_ms",
    "e2e_capacity_rps",
    "e2e_cpu_ms_per_event",
    "dispatch_rps",
    "baseline_client_rps",
    "dispatch_ratio",
    "lost",
    "duplicated",
    "machine",
    "parameters",
)


@dataclass(frozen=True, slots=True)
class Goal:
    figure: str
    text: str
    met: Callable[[float], bool]


# Issue 18's goals, as ratios to the bare baselines of the same run where there is one.
GOALS: tuple[Goal, ...] = (
    Goal("ingest_ratio", ">= 0.6", lambda value: value >= 0.6),
    Goal("create_payment_ratio", ">= 0.2", lambda value: value >= 0.2),
    Goal("e2e_p99_ms", "< 50 ms at 500/s", lambda value: value < 50),
    Goal("e2e_capacity_rps", ">= 1500/s", lambda value: value >= 1500),
    Goal("e2e_cpu_ms_per_event", "<= 1.0 ms", lambda value: value <= 1.0),
    Goal("dispatch_ratio", ">= 0.35", lambda value: value >= 0.35),
    Goal("lost", "= 0", lambda value: value == 0),
    Goal("duplicated", "= 0", lambda value: value == 0),
)

# (key, label, unit) in the order the table prints them.
TABLE_ROWS: tuple[tuple[str, str, str], ...] = (
    ("baseline_http_rps", "bare aiohttp handler", "req/s"),
    ("ingest_rps", "Razorpay webhook ingest", "req/s"),
    ("ingest_p50_ms", "  p50", "ms"),
    ("ingest_p99_ms", "  p99", "ms"),
    ("ingest_ratio", "  ingest / bare", ""),
    ("create_payment_rps", "POST /api/v1/payments", "req/s"),
    ("create_payment_p50_ms", "  p50", "ms"),
    ("create_payment_p99_ms", "  p99", "ms"),
    ("create_payment_ratio", "  payments / bare", ""),
    ("e2e_rate", "webhook -> payment:completed at", "events/s"),
    ("e2e_p50_ms", "  p50", "ms"),
    ("e2e_p99_ms", "  p99", "ms"),
    ("e2e_capacity_rps", "  kept up (p99 < 50 ms) to", "events/s"),
    ("e2e_cpu_ms_per_event", "  CPU, all processes", "ms/event"),
    ("baseline_client_rps", "raw client -> receiver", "req/s"),
    ("dispatch_rps", "merchant deliveries", "/s"),
    ("dispatch_ratio", "  deliveries / raw client", ""),
    ("lost", "lost", ""),
    ("duplicated", "duplicated", ""),
)


def _ratio(numerator: Figure, denominator: Figure) -> float | None:
    if numerator is None or not denominator:
        return None
    return round(float(numerator) / float(denominator), 3)


def build_record(
    results: Sequence[ScenarioResult],
    *,
    machine: dict[str, Any],
    parameters: dict[str, Any],
    run: dict[str, Any],
) -> dict[str, Any]:
    """latest.json: the figures at the top level, then the goals, the checks and each scenario's detail."""
    figures: dict[str, Figure] = {key: None for key in REQUIRED_KEYS if key not in ("machine", "parameters")}
    for result in results:
        figures.update(result.figures)
    if figures["ingest_ratio"] is None:  # the ingest scenario gives the median of its rounds' ratios
        figures["ingest_ratio"] = _ratio(figures["ingest_rps"], figures["baseline_http_rps"])
    figures["create_payment_ratio"] = _ratio(figures["create_payment_rps"], figures["baseline_http_rps"])
    figures["dispatch_ratio"] = _ratio(figures["dispatch_rps"], figures["baseline_client_rps"])
    checks = [asdict(check) for result in results for check in result.checks]
    figures["lost"] = sum(check["lost"] for check in checks)
    figures["duplicated"] = sum(check["duplicated"] for check in checks)
    record: dict[str, Any] = {
        **figures,
        "machine": machine,
        "parameters": parameters,
        "goals": [
            {
                "figure": goal.figure,
                "goal": goal.text,
                "value": figures[goal.figure],
                "met": _met(goal, figures),
            }
            for goal in GOALS
        ],
        "checks": checks,
        "scenarios": {result.name: result.details for result in results},
        "run": run,
    }
    return record


def _met(goal: Goal, figures: dict[str, Figure]) -> bool | None:
    value = figures.get(goal.figure)
    return None if value is None else goal.met(float(value))


def _format(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
    return f"{value:,}"


def format_table(record: dict[str, Any]) -> str:
    goals = {goal["figure"]: goal for goal in record["goals"]}
    lines = [f"{'figure':<34} {'value':>12}  {'unit':<9} {'goal':<18} met", "-" * 80]
    for key, label, unit in TABLE_ROWS:
        goal = goals.get(key)
        goal_text = goal["goal"] if goal else ""
        met = "" if goal is None else {True: "yes", False: "NO", None: "-"}[goal["met"]]
        lines.append(f"{label:<34} {_format(record[key]):>12}  {unit:<9} {goal_text:<18} {met}")
    lines += ["", f"{'check':<78} {'expected':>8} {'found':>8} {'lost':>6} {'dup':>5}", "-" * 110]
    for check in record["checks"]:
        lines.append(
            f"{check['name']:<78} {check['expected']:>8} {check['found']:>8} {check['lost']:>6} {check['duplicated']:>5}"
        )
    machine = record["machine"]
    lines += [
        "",
        f"machine: {machine.get('cores')} cores ({machine.get('cpu_model')}), {machine.get('python')}, "
        f"Redis {machine.get('redis')}, PostgreSQL {machine.get('postgresql')}, "
        f"load average {machine.get('load_average_at_start')} at start, {machine.get('load_average_at_end')} at end",
        f"single-core probe (100,000 SHA-256 of 100 bytes; lower is faster): "
        f"{machine.get('single_core_probe_ms_at_start')} ms at start, {machine.get('single_core_probe_ms_at_end')} ms at end; "
        f"CPU time stolen by the hypervisor during the run: {machine.get('cpu_steal_share')}",
    ]
    return "\n".join(lines)


def write_results(
    record: dict[str, Any], results: Sequence[ScenarioResult], directory: Path
) -> tuple[Path, Path]:
    """latest.json, latest.png and (with the e2e ladder) latest-ladder.png in `directory`, each
    written whole (temp file, then rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path, png_path = directory / "latest.json", directory / "latest.png"
    series = [item for result in results for item in result.series]
    record["plot"] = str(png_path)
    _atomic_write(json_path, orjson.dumps(record, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))
    temp_png = png_path.with_suffix(".png.tmp")
    latency_plot(series, temp_png)
    os.replace(temp_png, png_path)
    ladder = record["scenarios"].get("e2e", {}).get("ladder")
    if ladder:
        ladder_png = directory / "latest-ladder.png"
        ladder_plot(ladder, ladder_png.with_suffix(".png.tmp"))
        os.replace(ladder_png.with_suffix(".png.tmp"), ladder_png)
    return json_path, png_path


def _atomic_write(path: Path, data: bytes) -> None:
    temp = path.with_suffix(path.suffix + ".tmp")
    temp.write_bytes(data)
    os.replace(temp, path)
