"""`/api/v1/webhook-endpoints`: many endpoints per merchant, each with its filter, secret, headers,
rate limit and state; rotation, recovery and re-enabling; walled off by merchant. Through the real
API app (in-process aiohttp server, real PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiohttp.test_utils import TestClient

from paystream.webhooks import new_delivery_id, webhook_body
from paystream_api.auth import hash_secret
from paystream_api.webhook_api.endpoint_store import RECOVER_PACE_PER_S

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
OTHER_AUTH = {"X-Api-Key": "key_other_endpoints", "X-Api-Secret": "secret_other_endpoints"}
MERCHANT = "mer_test0000000001"
BASE = "/api/v1/webhook-endpoints"
URL = "http://127.0.0.1:9/hooks"
ENDPOINT_FIELDS = {
    "id",
    "url",
    "description",
    "events",
    "enabled",
    "disabled_reason",
    "disabled_at",
    "failing_since",
    "headers",
    "rate_limit_per_s",
    "is_default",
    "created_at",
    "updated_at",
}

Client = TestClient[Any, Any]


async def create(api: Client, body: dict[str, Any], headers: dict[str, str] = AUTH) -> dict[str, Any]:
    response = await api.post(BASE, json=body, headers=headers)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def error_of(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = await response.json()
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
async def other_merchant(api: Client, db_pool: asyncpg.Pool) -> str:
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ('mer_otherendpoint1', 'Other', 'other-endpoints@example.com', $1, $2, 'whsec_other')""",
        OTHER_AUTH["X-Api-Key"],
        hash_secret(OTHER_AUTH["X-Api-Secret"]),
    )
    return "mer_otherendpoint1"


async def test_create_list_get_update_and_delete_an_endpoint(api: Client) -> None:
    created = await create(
        api,
        {
            "url": URL,
            "description": "accounting",
            "events": ["payment.*", "refund.processed", "payment.success"],
            "headers": {"X-Tenant": "salon-7"},
            "rate_limit_per_s": 5,
        },
    )
    assert set(created) == ENDPOINT_FIELDS | {"secret", "previous_secret_expires_at"}
    assert created["id"].startswith("we_") and created["secret"].startswith("whsec_")
    assert created["events"] == ["payment.*", "refund.processed", "payment.success"]
    assert (created["enabled"], created["is_default"], created["rate_limit_per_s"]) == (True, False, 5)
    assert created["headers"] == {"X-Tenant": "salon-7"}

    listed = await (await api.get(BASE, headers=AUTH)).json()
    assert listed["total"] == 1 and set(listed["data"][0]) == ENDPOINT_FIELDS  # no secret in lists
    fetched = await (await api.get(f"{BASE}/{created['id']}", headers=AUTH)).json()
    assert fetched["secret"] == created["secret"]

    patched = await api.patch(
        f"{BASE}/{created['id']}",
        json={"events": ["*"], "rate_limit_per_s": None, "description": ""},
        headers=AUTH,
    )
    assert patched.status == 200
    body = await patched.json()
    assert (body["events"], body["rate_limit_per_s"], body["description"]) == (["*"], None, "")
    assert body["headers"] == {"X-Tenant": "salon-7"}  # untouched

    deleted = await api.delete(f"{BASE}/{created['id']}", headers=AUTH)
    assert deleted.status == 200 and await deleted.json() == {"id": created["id"], "deleted": True}
    assert (await api.get(f"{BASE}/{created['id']}", headers=AUTH)).status == 404
    assert (await (await api.get(BASE, headers=AUTH)).json())["total"] == 0


async def test_the_config_endpoint_is_the_default_endpoint(api: Client) -> None:
    put = await api.put(
        "/api/v1/webhooks/config", json={"url": URL, "events": ["payment.success"]}, headers=AUTH
    )
    assert put.status == 200
    config = await put.json()
    listed = (await (await api.get(BASE, headers=AUTH)).json())["data"]
    assert [(e["url"], e["events"], e["is_default"]) for e in listed] == [(URL, ["payment.success"], True)]
    default = await (await api.get(f"{BASE}/{listed[0]['id']}", headers=AUTH)).json()
    assert default["secret"] == config["secret"]  # the merchant's secret, as before

    # Rotating the default endpoint is rotating the config's secret.
    rotated = await (await api.post(f"{BASE}/{listed[0]['id']}/rotate-secret", headers=AUTH)).json()
    again = await (await api.get("/api/v1/webhooks/config", headers=AUTH)).json()
    assert rotated["secret"] == again["secret"] != config["secret"]
    assert again["previous_secret_expires_at"] is not None

    # Another endpoint does not change the config, and PUT keeps updating the default one.
    await create(api, {"url": "http://127.0.0.1:10/other"})
    put_again = await api.put("/api/v1/webhooks/config", json={"url": URL + "2"}, headers=AUTH)
    assert (await put_again.json())["url"] == URL + "2"
    urls = sorted(e["url"] for e in (await (await api.get(BASE, headers=AUTH)).json())["data"])
    assert urls == ["http://127.0.0.1:10/other", URL + "2"]


async def test_a_merchant_has_at_most_twenty_endpoints(api: Client) -> None:
    await api.put("/api/v1/webhooks/config", json={"url": URL}, headers=AUTH)
    for n in range(19):
        await create(api, {"url": f"{URL}/{n}"})
    refused = await api.post(BASE, json={"url": URL}, headers=AUTH)
    assert refused.status == 400
    assert (await error_of(refused))["code"] == "WEBHOOK_ENDPOINT_LIMIT"
    assert (await (await api.get(BASE, headers=AUTH)).json())["total"] == 20


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": URL, "events": []}, "events"),
        ({"url": URL, "events": ["payment.nope"]}, "events"),
        ({"url": URL, "events": ["nothing.*"]}, "events"),
        ({"url": URL, "events": ["*", "payment.success"]}, "events"),
        ({"url": URL, "headers": {"webhook-id": "x"}}, "headers"),
        ({"url": URL, "headers": {"X-Webhook-Signature": "x"}}, "headers"),
        ({"url": URL, "headers": {"Content-Type": "text/plain"}}, "headers"),
        ({"url": URL, "headers": {"X-Ok": "line\r\nbreak"}}, "headers"),
        ({"url": URL, "headers": {"bad name": "x"}}, "headers"),
        ({"url": URL, "headers": {"X-Ok": 5}}, "headers"),
        ({"url": URL, "headers": {f"X-H{n}": "v" for n in range(21)}}, "headers"),
        ({"url": URL, "rate_limit_per_s": 0}, "rate_limit_per_s"),
        ({"url": URL, "rate_limit_per_s": True}, "rate_limit_per_s"),
        ({"url": URL, "rate_limit_per_s": "5"}, "rate_limit_per_s"),
        ({"url": URL, "rate_limit_per_s": 10**30}, "rate_limit_per_s"),
        ({"url": URL, "description": "x" * 501}, "description"),
        ({"url": URL, "description": "nul\x00"}, "description"),
        ({"url": URL, "enabled": "yes"}, "enabled"),
        ({"url": URL, "surprise": 1}, "surprise"),
        ({"url": "ftp://127.0.0.1/x"}, "url"),
    ],
)
async def test_bad_endpoints_are_refused_naming_the_field_and_nothing_is_stored(
    api: Client, db_pool: asyncpg.Pool, body: dict[str, Any], field: str
) -> None:
    response = await api.post(BASE, json=body, headers=AUTH)
    assert response.status == 422, await response.text()
    assert (await error_of(response))["field"] == field
    assert await db_pool.fetchval("SELECT count(*) FROM webhook_endpoints") == 0


async def test_an_update_must_name_something_and_is_checked_like_a_create(api: Client) -> None:
    created = await create(api, {"url": URL})
    empty = await api.patch(f"{BASE}/{created['id']}", json={}, headers=AUTH)
    assert empty.status == 422
    bad = await api.patch(f"{BASE}/{created['id']}", json={"headers": {"Webhook-Id": "x"}}, headers=AUTH)
    assert bad.status == 422 and (await error_of(bad))["field"] == "headers"


async def test_endpoints_are_walled_off_by_merchant(api: Client, other_merchant: str) -> None:
    theirs = await create(api, {"url": URL}, headers=OTHER_AUTH)
    path = f"{BASE}/{theirs['id']}"
    assert (await api.get(path, headers=AUTH)).status == 404
    assert (await api.patch(path, json={"enabled": False}, headers=AUTH)).status == 404
    assert (await api.delete(path, headers=AUTH)).status == 404
    assert (await api.post(path + "/rotate-secret", headers=AUTH)).status == 404
    assert (
        await api.post(path + "/recover", json={"since": "2026-01-01T00:00:00Z"}, headers=AUTH)
    ).status == 404
    assert (await api.post(path + "/test", headers=AUTH)).status == 404
    assert (await (await api.get(BASE, headers=AUTH)).json())["total"] == 0
    still = await (await api.get(path, headers=OTHER_AUTH)).json()
    assert still["enabled"] is True


@pytest.mark.parametrize("endpoint_id", ["nope", "we_" + "0" * 31, "we_%00", "we_" + "²" * 32])
async def test_malformed_endpoint_ids_are_404(api: Client, endpoint_id: str) -> None:
    response = await api.get(f"{BASE}/{endpoint_id}", headers=AUTH)
    assert response.status == 404
    assert (await error_of(response))["field"] == "id"


async def test_rotation_keeps_the_old_secret_live_for_a_day(api: Client) -> None:
    created = await create(api, {"url": URL})
    rotated = await (await api.post(f"{BASE}/{created['id']}/rotate-secret", headers=AUTH)).json()
    assert rotated["secret"] != created["secret"] and rotated["secret"].startswith("whsec_")
    expires = datetime.fromisoformat(rotated["previous_secret_expires_at"])
    assert timedelta(hours=23) < expires - datetime.now(UTC) <= timedelta(hours=24)


async def insert_delivery(db_pool: asyncpg.Pool, endpoint_id: str, status: str, created_at: datetime) -> str:
    delivery_id = new_delivery_id()
    await db_pool.execute(
        """INSERT INTO webhook_deliveries (id, merchant_id, endpoint_id, event_id, event_type, payload,
                                           event_at, status, attempts, error, created_at)
           VALUES ($1, $2, $3, gen_random_uuid(), 'payment.success', $4, $5, $6, 5, 'HTTP 500', $5)""",
        delivery_id,
        MERCHANT,
        endpoint_id,
        webhook_body("payment.success", created_at, {"payment": {"id": "pay_x"}}),
        created_at,
        status,
    )
    return delivery_id


async def test_recover_resends_the_failed_deliveries_of_the_window_paced_with_their_ids(
    api: Client, db_pool: asyncpg.Pool
) -> None:
    endpoint = await create(api, {"url": URL})
    other = await create(api, {"url": URL + "/other"})
    now = datetime.now(UTC)
    inside = [
        await insert_delivery(db_pool, endpoint["id"], "failed", now - timedelta(hours=h)) for h in (3, 2, 1)
    ]
    too_old = await insert_delivery(db_pool, endpoint["id"], "failed", now - timedelta(days=2))
    succeeded = await insert_delivery(db_pool, endpoint["id"], "success", now - timedelta(hours=2))
    elsewhere = await insert_delivery(db_pool, other["id"], "failed", now - timedelta(hours=2))

    since = (now - timedelta(hours=4)).isoformat()
    response = await api.post(f"{BASE}/{endpoint['id']}/recover", json={"since": since}, headers=AUTH)
    assert response.status == 202
    body = await response.json()
    assert (body["recovering"], body["endpoint_id"], body["until"]) == (3, endpoint["id"], None)
    rows = {
        r["id"]: r for r in await db_pool.fetch("SELECT id, status, due_at, attempts FROM webhook_deliveries")
    }
    assert [rows[i]["status"] for i in inside] == ["pending"] * 3  # same rows: same webhook-ids
    due = [rows[i]["due_at"] for i in inside]
    assert due == sorted(due) and (due[2] - due[0]).total_seconds() == pytest.approx(2 / body["pace_per_s"])
    assert rows[too_old]["status"] == rows[elsewhere]["status"] == "failed"
    assert rows[succeeded]["status"] == "success"

    # A window with an end, and a bad window.
    until = (now - timedelta(hours=1, minutes=30)).isoformat()
    await db_pool.execute(
        "UPDATE webhook_deliveries SET status = 'failed', due_at = NULL WHERE id = ANY($1::text[])", inside
    )
    windowed = await api.post(
        f"{BASE}/{endpoint['id']}/recover", json={"since": since, "until": until}, headers=AUTH
    )
    assert (await windowed.json())["recovering"] == 2
    for bad, field in (
        ({}, "since"),
        ({"since": "yesterday"}, "since"),
        ({"since": "2026-01-01T00:00:00"}, "since"),  # no offset: ambiguous
        ({"since": since, "until": since}, "until"),
        ({"since": since, "extra": 1}, "extra"),
    ):
        refused = await api.post(f"{BASE}/{endpoint['id']}/recover", json=bad, headers=AUTH)
        assert refused.status == 422 and (await error_of(refused))["field"] == field, bad


async def test_recover_marks_the_window_s_deliveries_in_flight_to_go_after_the_failed_ones(
    api: Client, db_pool: asyncpg.Pool
) -> None:
    """An attempt in flight was made while the endpoint was failing: if it was the delivery's last,
    the dispatcher re-sends it at the time the mark gives (after the failed ones, at the pace)."""
    endpoint = await create(api, {"url": URL})
    now = datetime.now(UTC)
    failed = [
        await insert_delivery(db_pool, endpoint["id"], "failed", now - timedelta(hours=h)) for h in (3, 2)
    ]
    in_flight, retrying, too_old = [
        await insert_delivery(db_pool, endpoint["id"], "pending", created_at)
        for created_at in (now - timedelta(hours=1), now - timedelta(hours=1), now - timedelta(days=2))
    ]
    await db_pool.execute(
        """UPDATE webhook_deliveries SET lease_token = gen_random_uuid(), due_at = now() + interval '1 minute'
           WHERE id = ANY($1::text[])""",
        [in_flight, too_old],
    )
    await db_pool.execute(
        "UPDATE webhook_deliveries SET due_at = now() + interval '1 hour' WHERE id = $1", retrying
    )
    before = {r["id"]: r for r in await db_pool.fetch("SELECT * FROM webhook_deliveries")}

    since = (now - timedelta(hours=4)).isoformat()
    response = await api.post(f"{BASE}/{endpoint['id']}/recover", json={"since": since}, headers=AUTH)
    assert response.status == 202 and (await response.json())["recovering"] == 2
    rows = {r["id"]: r for r in await db_pool.fetch("SELECT * FROM webhook_deliveries")}
    marked = rows[in_flight]
    # Its attempt's outcome is still the lease holder's to write: only the mark changed.
    assert {k: v for k, v in marked.items() if k != "recover_at"} == {
        k: v for k, v in before[in_flight].items() if k != "recover_at"
    }
    last_failed_due = max(rows[i]["due_at"] for i in failed)
    assert marked["recover_at"] > last_failed_due
    assert (marked["recover_at"] - last_failed_due).total_seconds() == pytest.approx(1 / RECOVER_PACE_PER_S)
    assert rows[retrying]["recover_at"] is None and rows[too_old]["recover_at"] is None


async def test_recover_never_waits_for_a_delivery_a_dispatcher_is_writing(
    api: Client, db_pool: asyncpg.Pool
) -> None:
    """A dispatcher writing an outcome that fails nothing for good does not wait for the recovery
    (only failures for good do), so the recovery must not wait for it either: it would deadlock."""
    endpoint = await create(api, {"url": URL})
    in_flight = await insert_delivery(db_pool, endpoint["id"], "pending", datetime.now(UTC))
    await db_pool.execute(
        "UPDATE webhook_deliveries SET lease_token = gen_random_uuid() WHERE id = $1", in_flight
    )
    since = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    async with db_pool.acquire() as dispatcher, dispatcher.transaction():
        await dispatcher.execute("SELECT 1 FROM webhook_deliveries WHERE id = $1 FOR UPDATE", in_flight)
        response = await asyncio.wait_for(
            api.post(f"{BASE}/{endpoint['id']}/recover", json={"since": since}, headers=AUTH), timeout=10
        )
        assert response.status == 202 and (await response.json())["recovering"] == 0
    assert (
        await db_pool.fetchval("SELECT recover_at FROM webhook_deliveries WHERE id = $1", in_flight) is None
    )


async def test_a_disabled_endpoint_cannot_recover_and_re_enabling_starts_fresh(
    api: Client, db_pool: asyncpg.Pool
) -> None:
    endpoint = await create(api, {"url": URL})
    waiting = await insert_delivery(db_pool, endpoint["id"], "pending", datetime.now(UTC))
    await db_pool.execute("UPDATE webhook_deliveries SET due_at = now(), lease_token = NULL")
    disabled = await (
        await api.patch(f"{BASE}/{endpoint['id']}", json={"enabled": False}, headers=AUTH)
    ).json()
    assert disabled["disabled_reason"] == "disabled by the merchant" and disabled["disabled_at"]
    assert await db_pool.fetchval("SELECT status FROM webhook_deliveries WHERE id = $1", waiting) == "failed"
    refused = await api.post(
        f"{BASE}/{endpoint['id']}/recover", json={"since": "2026-01-01T00:00:00Z"}, headers=AUTH
    )
    assert refused.status == 400 and (await error_of(refused))["code"] == "WEBHOOK_ENDPOINT_DISABLED"

    # As the dispatcher leaves an endpoint it disabled after days of failures:
    await db_pool.execute(
        """UPDATE webhook_endpoints SET failing_since = now() - interval '6 days',
               disabled_reason = 'every attempt failed for 5 days' WHERE id = $1""",
        endpoint["id"],
    )
    enabled = await (await api.patch(f"{BASE}/{endpoint['id']}", json={"enabled": True}, headers=AUTH)).json()
    assert (
        enabled["enabled"],
        enabled["disabled_reason"],
        enabled["disabled_at"],
        enabled["failing_since"],
    ) == (
        True,
        None,
        None,
        None,
    )


async def test_the_delivery_log_reads_per_endpoint(api: Client, db_pool: asyncpg.Pool) -> None:
    first = await create(api, {"url": URL})
    second = await create(api, {"url": URL + "/2"})
    now = datetime.now(UTC)
    mine = await insert_delivery(db_pool, first["id"], "success", now)
    await insert_delivery(db_pool, second["id"], "success", now)
    page = await (await api.get(f"/api/v1/webhooks?endpoint_id={first['id']}", headers=AUTH)).json()
    assert [(d["id"], d["endpoint_id"]) for d in page["data"]] == [(mine, first["id"])]
    bad = await api.get("/api/v1/webhooks?endpoint_id=nope", headers=AUTH)
    assert bad.status == 422 and (await error_of(bad))["field"] == "endpoint_id"
