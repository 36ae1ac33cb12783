"""Latency over time, one panel per measured series: every request as a dot, p50 and p99 per time
bucket as lines, drawn with matplotlib (the `bench` dependency group; the Agg backend, no display)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.axes import Axes
from matplotlib.ticker import ScalarFormatter

from bench.stats import LatencySeries, percentile

BUCKETS = 100
PANEL_INCHES = (10.0, 2.6)
DOT = "#96bee8"
CLIPPED = "#f5aa3c"
P50 = "#143ca0"
P99 = "#c81e1e"


def bucket_percentiles(
    xs: Sequence[float], ys: Sequence[float], span: float
) -> list[tuple[float, float, float]]:
    """(bucket middle, p50, p99) for each of BUCKETS time buckets over `span` that holds a value."""
    width = span / BUCKETS if span > 0 else 1.0
    buckets: list[list[float]] = [[] for _ in range(BUCKETS + 1)]
    for x, y in zip(xs, ys, strict=True):
        buckets[min(BUCKETS, int(x / width))].append(y)
    points = []
    for index, values in enumerate(buckets):
        if values:
            values.sort()
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            assert p50 is not None and p99 is not None
            points.append(((index + 0.5) * width, p50, p99))
    return points


def _panel(axes: Axes, series: LatencySeries) -> None:
    summary = series.summary()
    p50 = "-" if summary["p50_ms"] is None else summary["p50_ms"]
    p99 = "-" if summary["p99_ms"] is None else summary["p99_ms"]
    axes.set_title(
        f"{series.name.replace('_', ' ')}   n {summary['count']}   p50 {p50} ms   p99 {p99} ms",
        loc="left",
        fontsize=10,
    )
    axes.set_ylabel("ms")
    axes.set_xlabel("time (s)")
    axes.grid(True, color="#ebebeb")
    if not series.latency_ms:
        axes.text(0.5, 0.5, "no measured requests", transform=axes.transAxes, ha="center", color="grey")
        return
    origin = min(series.started_at)
    xs = [start - origin for start in series.started_at]
    top_ms = (series.quantile(0.999) or 1.0) * 1.1
    inside = [(x, y) for x, y in zip(xs, series.latency_ms, strict=True) if y <= top_ms]
    clipped = [(x, top_ms) for x, y in zip(xs, series.latency_ms, strict=True) if y > top_ms]
    if inside:
        axes.scatter(
            [x for x, _ in inside], [y for _, y in inside], s=2, color=DOT, linewidths=0, label="requests"
        )
    if clipped:
        axes.scatter(
            [x for x, _ in clipped],
            [y for _, y in clipped],
            s=4,
            color=CLIPPED,
            linewidths=0,
            label="above p99.9",
        )
    points = bucket_percentiles(xs, series.latency_ms, max(xs) or 1.0)
    axes.plot([p[0] for p in points], [p[1] for p in points], color=P50, linewidth=1.2, label="p50")
    axes.plot([p[0] for p in points], [p[2] for p in points], color=P99, linewidth=1.2, label="p99")
    axes.set_ylim(0, top_ms)
    axes.set_xlim(left=0)
    axes.legend(loc="upper right", fontsize=8, frameon=False, ncols=4)


def latency_plot(series: Sequence[LatencySeries], path: Path) -> None:
    """Write one panel per series, stacked, to `path` (a PNG)."""
    rows = max(1, len(series))
    figure, axes = plt.subplots(rows, 1, figsize=(PANEL_INCHES[0], PANEL_INCHES[1] * rows), squeeze=False)
    for index in range(rows):
        if index < len(series):
            _panel(axes[index][0], series[index])
        else:
            axes[index][0].set_axis_off()
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)


def ladder_plot(ladder: Sequence[dict[str, Any]], path: Path) -> None:
    """The e2e ladder: p50 and p99 against the offered rate (log scale), the 50 ms line, and the
    CPU per event of all processes, to `path` (a PNG)."""
    figure, (latency, cpu) = plt.subplots(1, 2, figsize=(PANEL_INCHES[0], 3.2))
    rates = [rung["rate"] for rung in ladder]
    for key, color, label in (("p50_ms", P50, "p50"), ("p99_ms", P99, "p99")):
        latency.plot(rates, [rung["latency"][key] for rung in ladder], marker="o", color=color, label=label)
    latency.axhline(50, color="grey", linestyle="--", linewidth=0.8, label="50 ms")
    for rung in ladder:
        if not rung["keeps_pace"]:
            latency.annotate("fell behind", (rung["rate"], rung["latency"]["p99_ms"]), fontsize=7, color=P99)
    latency.set_yscale("log")
    latency.set_xlabel("offered webhooks / s")
    latency.set_ylabel("ms (POST to payment:completed)")
    latency.yaxis.set_major_formatter(ScalarFormatter())
    latency.grid(True, color="#ebebeb")
    latency.legend(fontsize=8, frameon=False)
    cpu.bar(
        [str(int(rate)) for rate in rates], [rung["cpu_ms_per_event"]["total"] for rung in ladder], color=DOT
    )
    cpu.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
    cpu.set_xlabel("offered webhooks / s")
    cpu.set_ylabel("CPU ms / event, all processes")
    cpu.grid(True, axis="y", color="#ebebeb")
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=100)
    plt.close(figure)
