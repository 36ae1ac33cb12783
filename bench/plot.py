"""Latency over time, one panel per measured series: every request as a dot, p50 and p99 per time
bucket as lines, drawn with `bench.png`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from bench.png import BLACK, GREY, Canvas, Color
from bench.stats import LatencySeries, percentile

WIDTH = 1000
PANEL_HEIGHT = 220
LEFT, RIGHT, TOP, BOTTOM = 80, 20, 34, 30
DOT: Color = (150, 190, 235)
CLIPPED: Color = (245, 170, 60)
P50: Color = (20, 60, 160)
P99: Color = (200, 30, 30)
BUCKETS = 100


def nice_step(span: float, ticks: int = 5) -> float:
    """A round tick step (1, 2 or 5 times a power of ten) giving about `ticks` ticks over `span`."""
    raw = max(span, 1e-9) / ticks
    magnitude = 10 ** math.floor(math.log10(raw))
    return float(next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw))


def tick_label(value: float, step: float) -> str:
    if step >= 1:
        return str(round(value))
    decimals = max(0, -math.floor(math.log10(step)))
    return f"{value:.{decimals}f}"


def _bucket_percentiles(
    xs: Sequence[float], ys: Sequence[float], span: float
) -> list[tuple[float, float, float]]:
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


def draw_panel(canvas: Canvas, top: int, series: LatencySeries) -> None:
    summary = series.summary()
    p50 = "-" if summary["p50_ms"] is None else summary["p50_ms"]
    p99 = "-" if summary["p99_ms"] is None else summary["p99_ms"]
    title = f"{series.name}   n {summary['count']}   p50 {p50} ms   p99 {p99} ms"
    canvas.text(LEFT, top + 8, title.replace("_", " "), BLACK, scale=2)
    x0, x1 = LEFT, WIDTH - RIGHT
    y0, y1 = top + TOP, top + PANEL_HEIGHT - BOTTOM
    if not series.latency_ms:
        canvas.text(x0 + 10, (y0 + y1) // 2, "no measured requests", GREY)
        return
    origin = min(series.started_at)
    xs = [start - origin for start in series.started_at]
    span_x = max(xs) or 1.0
    top_ms = series.quantile(0.999) or 1.0
    step_y = nice_step(top_ms * 1.1)
    max_y = step_y * math.ceil(top_ms * 1.1 / step_y)
    step_x = nice_step(span_x)

    def px(x: float) -> int:
        return x0 + round(x / span_x * (x1 - x0))

    def py(y: float) -> int:
        return y1 - round(min(y, max_y) / max_y * (y1 - y0))

    value = 0.0
    while value <= max_y + 1e-9:
        canvas.line(x0, py(value), x1, py(value), (235, 235, 235))
        label = tick_label(value, step_y)
        canvas.text(x0 - 8 - Canvas.text_width(label), py(value) - 5, label, BLACK)
        value += step_y
    value = 0.0
    while value <= span_x + 1e-9:
        canvas.line(px(value), y1, px(value), y1 + 4, BLACK)
        label = tick_label(value, step_x)
        canvas.text(px(value) - Canvas.text_width(label) // 2, y1 + 8, label, BLACK)
        value += step_x
    canvas.text(x0 - 70, y0 - 16, "ms", BLACK)
    canvas.text(x0 - 75, y1 + 8, "time s", BLACK)
    for x, y in zip(xs, series.latency_ms, strict=True):
        canvas.set(px(x), py(y), CLIPPED if y > max_y else DOT)
    previous: tuple[int, int, int] | None = None
    for x, p50, p99 in _bucket_percentiles(xs, series.latency_ms, span_x):
        point = (px(x), py(p50), py(p99))
        if previous is not None:
            canvas.line(previous[0], previous[1], point[0], point[1], P50)
            canvas.line(previous[0], previous[2], point[0], point[2], P99)
        previous = point
    canvas.line(x0, y0, x0, y1, BLACK)
    canvas.line(x0, y1, x1, y1, BLACK)


def latency_plot(series: Sequence[LatencySeries], path: Path) -> None:
    """Write one panel per series, stacked, to `path`."""
    height = 40 + PANEL_HEIGHT * max(1, len(series))
    canvas = Canvas(WIDTH, height)
    canvas.text(LEFT, 10, "latency over time: dots = requests, blue = p50, red = p99 per bucket", BLACK)
    for index, item in enumerate(series):
        draw_panel(canvas, 30 + index * PANEL_HEIGHT, item)
    canvas.save(path)
