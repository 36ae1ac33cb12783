"""The metrics every service serves at /metrics: bus figures read at scrape time, and the delivery and
socket metrics the dispatcher and notifier record."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from aiohttp.test_utils import TestClient, TestServer
from payctl_testkit import PAYMENTS, publish
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from payment_processor.settings import ProcessorSettings
from payment_processor.worker import create_app
from paystream.events import Event, EventType
from paystream.streaminfo import BusMetrics, count_after
from paystream_devstack.testing import eventually

PAYMENTS_DLQ = f"{PAYMENTS}:dlq"


def sample(families: dict[str, Any], family: str, **labels: str) -> float | None:
    for item in families[family].samples:
        if item.labels == labels:
            return float(item.value)
    return None


async def test_processor_metrics_expose_the_bus_the_outbox_and_the_new_metrics(
    service_env: dict[str, str], redis: aioredis.Redis, db_pool: asyncpg.Pool
) -> None:
    for _ in range(3):  # a type the processor ignores: its own consumer acknowledges them
        await publish(redis, PAYMENTS, Event(type=EventType.WEBHOOK_TEST, merchant_id="mer_a", data={}))
    await redis.xgroup_create(PAYMENTS, "notifier", id="0")  # nobody reads it: lag 3
    await redis.xadd(PAYMENTS_DLQ, {"source_stream": PAYMENTS, "error": "boom"})
    await db_pool.execute(  # a provider event that ended failed (the processor claims none of it)
        """INSERT INTO provider_events (provider, event_id, type, merchant_id, payload, status)
           VALUES ('razorpay', 'evt_failed', 'payment.captured', 'mer_a', '{}', 'failed')"""
    )

    async with TestClient(TestServer(create_app(ProcessorSettings.from_env(service_env)))) as client:

        async def scrape() -> dict[str, Any] | None:
            response = await client.get("/metrics")
            assert response.status == 200
            families = {
                family.name: family for family in text_string_to_metric_families(await response.text())
            }
            lag = sample(families, "paystream_stream_lag", group="notifier", stream=PAYMENTS)
            return families if lag == 3 else None

        families = await eventually(scrape, timeout=15, interval=0.2, message="lag of the notifier group")

    for name in (
        "paystream_events_handled",
        "paystream_events_dead_lettered",
        "paystream_handler_seconds",
        "paystream_webhook_delivery_attempts",
        "paystream_webhook_delivery_seconds",
        "paystream_stream_length",
        "paystream_stream_pending",
        "paystream_stream_oldest_pending_seconds",
        "paystream_stream_consumers",
        "paystream_outbox_backlog",
        "paystream_outbox_oldest_unpublished_seconds",
        "paystream_provider_events_waiting",
        "paystream_provider_events_oldest_waiting_seconds",
        "paystream_provider_events_failed",
    ):
        assert name in families, name
    assert sample(families, "paystream_stream_length", stream=PAYMENTS) == 3
    assert sample(families, "paystream_stream_pending", group="notifier", stream=PAYMENTS) == 0
    assert sample(families, "paystream_dead_letters", stream=PAYMENTS) == 1
    assert sample(families, "paystream_outbox_backlog") == 0
    assert sample(families, "paystream_provider_events_failed") == 1
    assert sample(families, "paystream_bus_metrics_up", source="redis") == 1
    assert sample(families, "paystream_bus_metrics_up", source="database") == 1


async def test_bus_metrics_drop_stale_figures_when_redis_is_unreachable(redis: aioredis.Redis) -> None:
    await publish(redis, PAYMENTS, Event(type=EventType.WEBHOOK_TEST, merchant_id="mer_a", data={}))
    metrics = BusMetrics(max_age_s=0, timeout_s=1)
    await metrics.refresh(redis, None)
    assert REGISTRY.get_sample_value("paystream_stream_length", {"stream": PAYMENTS}) == 1

    unreachable = aioredis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)
    try:
        await metrics.refresh(unreachable, None)
    finally:
        await unreachable.aclose()

    assert REGISTRY.get_sample_value("paystream_bus_metrics_up", {"source": "redis"}) == 0
    assert REGISTRY.get_sample_value("paystream_stream_length", {"stream": PAYMENTS}) is None


async def test_lag_count_stops_at_its_cap(redis: aioredis.Redis) -> None:
    ids = [
        await publish(redis, PAYMENTS, Event(type=EventType.WEBHOOK_TEST, merchant_id="m", data={}))
        for _ in range(5)
    ]

    assert await count_after(redis, PAYMENTS, ids[0], cap=100) == (4, False)
    assert await count_after(redis, PAYMENTS, ids[0], cap=3) == (3, True)
    assert await count_after(redis, PAYMENTS, ids[-1], cap=100) == (0, False)


def test_dashboard_and_alerts_use_only_metrics_that_exist() -> None:
    # The services' own metrics modules register their names too.
    importlib.import_module("webhook_dispatcher.metrics")
    importlib.import_module("notifier.metrics")
    infra = Path(__file__).resolve().parents[3] / "infra"
    dashboard = (infra / "grafana" / "dashboards" / "paystream.json").read_text()
    alerts = (infra / "prometheus" / "alerts.yml").read_text()
    orjson.loads(dashboard)  # valid JSON
    exposed = {
        sample_name
        for family in REGISTRY.collect()
        for sample_name in (
            family.name,
            f"{family.name}_total",
            f"{family.name}_bucket",
            f"{family.name}_count",
        )
    }

    used = set(re.findall(r"\bpaystream_[a-z_]+", dashboard + alerts))

    assert "paystream_stream_lag" in used and "paystream_stream_lag" in exposed
    assert used <= exposed, sorted(used - exposed)
