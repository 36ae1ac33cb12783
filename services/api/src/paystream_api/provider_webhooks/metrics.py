"""Prometheus metrics of inbound provider webhooks (served at the API's `/metrics`)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Histogram

WEBHOOKS_RECEIVED = Counter(
    "paystream_provider_webhooks_total",
    "Inbound provider webhooks by outcome (accepted, duplicate, rejected, unauthorized, invalid, unavailable)",
    ["provider", "outcome"],
)
INGEST_BATCH_SIZE = Histogram(
    "paystream_provider_ingest_batch_size",
    "Webhooks stored per group-commit transaction",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)

INGEST_STORE_SECONDS = Histogram(
    "paystream_provider_ingest_store_seconds",
    "Time one group-commit transaction took",
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5),
)


@dataclass(frozen=True, slots=True)
class OutcomeCounters:
    """One provider's outcome counters, bound once (labels() per request costs a lock and a lookup)."""

    accepted: Counter
    duplicate: Counter
    rejected: Counter
    unauthorized: Counter
    invalid: Counter
    unavailable: Counter


def outcome_counters(provider: str) -> OutcomeCounters:
    return OutcomeCounters(
        **{name: WEBHOOKS_RECEIVED.labels(provider, name) for name in OutcomeCounters.__slots__}
    )
