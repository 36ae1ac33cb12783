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
DEAD_LETTERS_UNCONFIRMED = Counter(
    "paystream_dead_letters_unconfirmed_total",
    "Dead letters not yet held by the replicas asked for; their entries were left pending",
    ["group"],
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

# Webhook deliveries (the dispatcher): one observation per HTTP attempt. Outcomes: `success` (2xx),
# `http_error` (any other status), `timeout`, `connection_error`, `refused` (a URL the safety checks
# reject). Latency covers the whole attempt, connect to last body byte.
WEBHOOK_DELIVERY_ATTEMPTS = Counter(
    "paystream_webhook_delivery_attempts_total", "Merchant webhook delivery attempts by outcome", ["outcome"]
)
WEBHOOK_DELIVERY_LATENCY = Histogram(
    "paystream_webhook_delivery_seconds",
    "Time a webhook delivery attempt took, by outcome",
    ["outcome"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15),
)
# The bus as seen at scrape time (paystream.streaminfo.BusMetrics sets these, and STREAM_LAG above).
STREAM_LENGTH = Gauge("paystream_stream_length", "Entries in the stream", ["stream"])
STREAM_PENDING = Gauge(
    "paystream_stream_pending", "Entries delivered to the group and not yet acknowledged", ["group", "stream"]
)
STREAM_OLDEST_PENDING = Gauge(
    "paystream_stream_oldest_pending_seconds",
    "Age of the group's oldest unacknowledged entry (0 when none)",
    ["group", "stream"],
)
STREAM_CONSUMERS = Gauge(
    "paystream_stream_consumers", "Consumers registered in the group", ["group", "stream"]
)
STREAM_LIVE_CONSUMERS = Gauge(
    "paystream_stream_live_consumers",
    "Consumers of the group alive now: heartbeat recent, or (without one) served an entry within 2m",
    ["group", "stream"],
)
# The notifier's readers (plain XREAD, no group), one series per process, from their heartbeats.
READER_LAG = Gauge(
    "paystream_stream_reader_lag",
    "Entries after the reader's position that were in the stream at its last heartbeat",
    ["reader", "stream"],
)
READER_LAST_SEEN = Gauge(
    "paystream_stream_reader_last_seen_seconds", "Age of the reader's last heartbeat", ["reader", "stream"]
)
READER_LIVE = Gauge(
    "paystream_stream_reader_live",
    "1 while the reader's heartbeat is recent, 0 once it has gone silent (crashed or hung)",
    ["reader", "stream"],
)
DEAD_LETTERS = Gauge("paystream_dead_letters", "Entries in the stream's dead-letter stream", ["stream"])
OUTBOX_OLDEST_UNPUBLISHED = Gauge(
    "paystream_outbox_oldest_unpublished_seconds",
    "Age of the oldest outbox row not yet published (0 when none)",
)
# Provider events the processors claim from PostgreSQL (no stream): the work queue's gauges.
PROVIDER_EVENTS_WAITING = Gauge(
    "paystream_provider_events_waiting",
    "Stored provider events waiting for a processor (counted up to a cap)",
)
PROVIDER_EVENTS_OLDEST_WAITING = Gauge(
    "paystream_provider_events_oldest_waiting_seconds",
    "Age of the oldest provider event waiting for a processor (0 when none)",
)
PROVIDER_EVENTS_FAILED = Gauge(
    "paystream_provider_events_failed",
    "Provider events that ended `failed` after repeated failed attempts (their dead-letter state)",
)
BUS_METRICS_UP = Gauge(
    "paystream_bus_metrics_up", "1 when the last scrape-time read of the source succeeded", ["source"]
)

# Supervised background loops (paystream.supervision): 1 while running, 0 while waiting to restart.
BACKGROUND_TASK_UP = Gauge("paystream_background_task_up", "1 while the background task runs", ["task"])
BACKGROUND_TASK_RESTARTS = Counter(
    "paystream_background_task_restarts_total", "Restarts of a background task after it failed", ["task"]
)
