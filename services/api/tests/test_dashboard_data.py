"""What the dashboard reads besides the merchant API: a payment's timeline, totals and chart series,
the streams figures, and the README's verification snippets (one source)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import asyncpg
from aiohttp.test_utils import TestClient

from paystream import outbox
from paystream.events import EventType, Stream
from paystream.resources import payment_event
from paystream_devstack.testing.polling import eventually

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
ROOT = Path(__file__).resolve().parents[3]
SNIPPETS = ROOT / "services/api/src/paystream_api/frontend/dashboard/snippets"


async def create_payment(
    api: TestClient[Any, Any], order_id: str = "ord_dash_1", amount: int = 50_000
) -> dict[str, Any]:
    response = await api.post(
        "/api/v1/payments",
        json={
            "order_id": order_id,
            "amount": amount,
            "currency": "INR",
            "method": "upi",
            "vpa": "asha@okbank",
        },
        headers=AUTH,
    )
    assert response.status == 201, await response.text()
    payment: dict[str, Any] = await response.json()
    return payment


async def test_a_payments_timeline_lists_its_events_in_order(api: TestClient[Any, Any]) -> None:
    payment = await create_payment(api)
    other = await create_payment(api, "ord_dash_2")
    response = await api.get(f"/api/v1/payments/{payment['id']}/events", headers=AUTH)
    assert response.status == 200
    body = await response.json()
    assert body["source"] == "events"
    assert [entry["type"] for entry in body["data"]] == ["payment.created", "payment.pending"]
    assert all(entry["object"]["id"] == payment["id"] for entry in body["data"])
    assert other["id"] not in str(body)


async def test_the_timeline_is_walled_off_by_merchant(
    api: TestClient[Any, Any], other_merchant: dict[str, str], db_pool: asyncpg.Pool
) -> None:
    payment = await create_payment(api)
    # Another merchant's event about an object with the same id (a provider's ids are per merchant).
    foreign = {**payment, "merchant_id": "mer_other000000001", "status": "failed"}
    async with db_pool.acquire() as conn, conn.transaction():
        await outbox.enqueue(conn, Stream.PAYMENT_EVENTS, [payment_event(EventType.PAYMENT_FAILED, foreign)])  # type: ignore[arg-type]
    mine = await (await api.get(f"/api/v1/payments/{payment['id']}/events", headers=AUTH)).json()
    assert "payment.failed" not in [entry["type"] for entry in mine["data"]]
    theirs = await api.get(f"/api/v1/payments/{payment['id']}/events", headers=other_merchant)
    assert theirs.status == 404


async def test_past_the_outbox_retention_the_timeline_comes_from_the_records(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    payment = await create_payment(api)
    await db_pool.execute("DELETE FROM outbox")
    body = await (await api.get(f"/api/v1/payments/{payment['id']}/events", headers=AUTH)).json()
    assert body["source"] == "record"
    assert [entry["type"] for entry in body["data"]] == ["payment.created"]


async def test_an_outbox_payload_that_jsonb_refuses_is_still_written(db_pool: asyncpg.Pool) -> None:
    """Nothing the outbox indexes or triggers on may fail an insert over its payload (an escaped NUL
    is valid JSON, not jsonb)."""
    await db_pool.execute(
        """INSERT INTO outbox (event_id, stream, event_type, merchant_id, payload)
           VALUES (gen_random_uuid(), 'payment:events', 'payment.failed', 'mer_x', $1)""",
        b'{"data": {"payment": {"id": "pay_x", "error_description": "a\\u0000b"}}}',
    )
    assert await db_pool.fetchval("SELECT count(*) FROM outbox WHERE merchant_id = 'mer_x'") == 1


async def test_unknown_or_malformed_payment_ids_are_404(api: TestClient[Any, Any]) -> None:
    for payment_id in ("pay_0000000000000000", "nope", "pay_%00"):
        assert (await api.get(f"/api/v1/payments/{payment_id}/events", headers=AUTH)).status == 404


async def test_the_payments_summary_counts_totals_and_the_last_hour_per_minute(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    empty = await (await api.get("/api/v1/dashboard/payments/summary", headers=AUTH)).json()
    assert empty["totals"]["count"] == 0
    assert empty["totals"]["success_rate"] is None
    first = await create_payment(api, "ord_a", 10_000)
    second = await create_payment(api, "ord_b", 20_000)
    await create_payment(api, "ord_c", 30_000)
    await db_pool.execute("UPDATE payments SET status = 'success' WHERE id = $1", first["id"])
    await db_pool.execute("UPDATE payments SET status = 'failed' WHERE id = $1", second["id"])
    response = await api.get("/api/v1/dashboard/payments/summary", headers=AUTH)
    assert response.status == 200
    body = await response.json()
    totals = body["totals"]
    assert (totals["count"], totals["succeeded"], totals["failed"], totals["pending"]) == (3, 1, 1, 1)
    assert totals["success_rate"] == 0.5
    assert totals["volume"] == [{"currency": "INR", "amount": 10_000, "refunded": 0}]
    series = body["per_minute"]["series"]
    assert all(len(values) == 60 for values in series.values())
    assert (sum(series["success"]), sum(series["failed"]), sum(series["pending"])) == (1, 1, 1)


async def test_the_webhooks_summary_rates_deliveries(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    await api.put("/api/v1/webhooks/config", json={"url": "http://127.0.0.1:9/hook"}, headers=AUTH)
    for _ in range(3):
        assert (await api.post("/api/v1/webhooks/test", headers=AUTH)).status == 202
    ids = [row["id"] for row in await db_pool.fetch("SELECT id FROM webhook_deliveries ORDER BY id")]
    await db_pool.execute(
        "UPDATE webhook_deliveries SET status = 'success', attempts = 1 WHERE id = $1", ids[0]
    )
    await db_pool.execute(
        "UPDATE webhook_deliveries SET status = 'pending', attempts = 2 WHERE id = $1", ids[1]
    )
    body = await (await api.get("/api/v1/dashboard/webhooks/summary", headers=AUTH)).json()
    assert body["last_24h"] == {"delivered": 1, "failing": 1, "waiting": 1, "success_rate": 0.5}
    assert sum(body["per_bucket"]["delivered"]) == 1
    assert sum(body["per_bucket"]["failing"]) == 1
    assert len(body["per_bucket"]["success_rate"]) == 12
    assert "payment.success" in body["event_types"]
    assert "provider_event.received" not in body["event_types"]


async def test_the_streams_figures_are_payctl_healths(api: TestClient[Any, Any], redis: Any) -> None:
    await redis.xgroup_create("payment:events", "payment-processor", id="0", mkstream=True)
    await redis.xadd("payment:events", {"event": "{}"})
    await redis.xadd("payment:events:dlq", {"event": "{}"})

    async def figures() -> dict[str, Any] | None:
        body: dict[str, Any] = await (await api.get("/api/v1/dashboard/streams", headers=AUTH)).json()
        groups = [group for group in body["bus"]["groups"] if group["group"] == "payment-processor"]
        return body if groups and groups[0]["lag"] == 1 else None

    body = await eventually(figures)
    assert body["bus"]["dead_letters"]["payment:events"] == 1
    assert body["outbox"]["available"] is True
    assert isinstance(body["outbox"]["unpublished"], int)


async def test_dashboard_endpoints_need_authentication(api: TestClient[Any, Any]) -> None:
    for path in (
        "/api/v1/dashboard/payments/summary",
        "/api/v1/dashboard/webhooks/summary",
        "/api/v1/dashboard/streams",
        "/api/v1/payments/pay_0000000000000000/events",
    ):
        assert (await api.get(path)).status == 401, path


def readme_block(language: str, heading: str) -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("### Verifying signatures") :]
    match = re.search(rf"#### {re.escape(heading)}\n\n```{language}\n(.*?)```", section, re.S)
    assert match, f"README.md has no {heading} block under 'Verifying signatures'"
    return match.group(1)


def test_the_readmes_verification_snippets_are_the_files_the_dashboard_serves() -> None:
    """One source: edit the file and the README's block together, or this fails."""
    assert readme_block("python", "Python") == (SNIPPETS / "verify_webhook.py").read_text()
    assert readme_block("js", "Node.js") == (SNIPPETS / "verify_webhook.js").read_text()


async def test_the_snippets_are_served_as_text(api: TestClient[Any, Any]) -> None:
    for name in ("verify_webhook.py", "verify_webhook.js"):
        response = await api.get(f"/dashboard/snippets/{name}")
        assert response.status == 200
        assert response.content_type == "text/plain"
        assert await response.text() == (SNIPPETS / name).read_text()
    assert (await api.get("/dashboard/snippets/..%2Fpages.py")).status == 404
