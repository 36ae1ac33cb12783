"""The notifier's Prometheus metrics, served with the shared ones at `GET /metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

STREAM_LAG = Gauge(
    "paystream_notifier_stream_lag",
    "Entries of the stream this process has not handed to its sockets yet (read when scraped)",
    ["stream"],
)
CONNECTED_SOCKETS = Gauge("paystream_notifier_connected_sockets", "Sockets connected to this process")
AUTH_REFUSED = Counter("paystream_notifier_auth_refused_total", "Handshakes refused", ["reason"])
NOTIFICATIONS_SENT = Counter(
    "paystream_notifier_notifications_total", "Socket.IO events sent (one per recipient)", ["event", "path"]
)
SLOW_CLIENTS_DISCONNECTED = Counter(
    "paystream_notifier_slow_clients_disconnected_total", "Sockets cut off for not keeping up"
)
CATCH_UPS = Counter("paystream_notifier_catch_ups_total", "Catch-ups run", ["scope", "outcome"])
EVENT_TO_EMIT = Histogram(
    "paystream_notifier_event_to_emit_seconds",
    "From an event's creation to its hand-over to the sockets of this process",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
