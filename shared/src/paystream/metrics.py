"""Prometheus metrics shared by every service; each service serves them at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_HANDLED = Counter(
    "paystream_events_handled_total", "Stream events handled successfully", ["group", "type"]
)
EVENTS_FAILED = Counter(
    "paystream_events_failed_total", "Handler failures (each failed delivery counts)", ["group", "type"]
)
EVENTS_DEAD_LETTERED = Counter(
    "paystream_events_dead_lettered_total", "Stream entries moved to a dead-letter stream", ["group", "type"]
)
EVENTS_RECLAIMED = Counter(
    "paystream_events_reclaimed_total", "Pending entries reclaimed from idle consumers", ["group", "stream"]
)
HANDLER_LATENCY = Histogram(
    "paystream_handler_seconds",
    "Time a handler took",
    ["group", "type"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
STREAM_LAG = Gauge("paystream_stream_lag", "Entries not yet delivered to the group", ["group", "stream"])
OUTBOX_BACKLOG = Gauge("paystream_outbox_backlog", "Outbox rows not yet published (seen by this relay)")
OUTBOX_PUBLISHED = Counter("paystream_outbox_published_total", "Outbox rows published to streams", ["stream"])
