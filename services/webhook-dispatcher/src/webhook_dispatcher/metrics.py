"""Prometheus metrics of the webhook dispatcher (served at `GET /metrics`); per-attempt outcomes and
latency are the shared `paystream_webhook_delivery_*` metrics of `paystream.metrics`."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DELIVERIES_CREATED = Counter(
    "paystream_webhook_deliveries_created_total", "Delivery-log rows written for merchant endpoints"
)
IN_FLIGHT = Gauge("paystream_webhook_in_flight", "Webhook attempts in flight in this dispatcher")
OUTCOMES_UNRECORDED = Gauge(
    "paystream_webhook_outcomes_unrecorded", "Attempt outcomes waiting to be written to PostgreSQL"
)
LEASES_LOST = Counter(
    "paystream_webhook_leases_lost_total", "Attempt outcomes dropped because the claim had expired"
)
