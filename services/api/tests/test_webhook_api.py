"""Webhook configuration, delivery logs and manual retry through the real API app (in-process aiohttp
server, real PostgreSQL); the end-to-end tests add a real dispatcher process and a real receiver."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
import redis.asyncio as aioredis
import uuid_utils
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from paystream.webhooks import new_delivery_id, webhook_body
from paystream_api.app import create_app
from paystream_api.auth import hash_secret
from paystream_api.settings import ApiSettings
from paystream_devstack.testing import ServiceProcess, eventually
from paystream_devstack.testing.outbound_urls import DEV_MODE_URL_CASES, UrlCase

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
OTHER_AUTH = {"X-Api-Key": "key_other_webhooks", "X-Api-Secret": "secret_other_webhooks"}
TEST_MERCHANT = "mer_test0000000001"
# How long a real dispatcher process may take to deliver: generous, for a machine that also runs the
# browser and fault suites (an attempt normally takes milliseconds).
DISPATCH_WAIT_S = 30.0
LOG_FIELDS = {
    "id",
    "endpoint_id",
    "event",
    "payload",
    "status",
    "attempts",
    "last_attempt_at",
    "next_retry_at",
    "response_code",
    "response_body",
    "duration_ms",
    "error",
    "created_at",
}

Client = TestClient[Any, Any]


@pytest.fixture
async def api(service_env: dict[str, str]) -> AsyncIterator[Client]:
    app = create_app(ApiSettings.from_env(service_env))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def strict_api(service_env: dict[str, str]) -> AsyncIterator[Client]:
    """The API as production runs it: no private network listed, so private webhook URLs refused."""
    app = create_app(ApiSettings.from_env({**service_env, "WEBHOOK_ALLOWED_PRIVATE_NETS": ""}))
    async with TestClient(TestServer(app)) as client:
        yield client


@pytest.fixture
async def other_merchant(api: Client, db_pool: asyncpg.Pool) -> str:
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ('mer_otherwebhooks1', 'Other', 'other-webhooks@example.com', $1, $2, 'whsec_other')""",
        OTHER_AUTH["X-Api-Key"],
        hash_secret(OTHER_AUTH["X-Api-Secret"]),
    )
    return "mer_otherwebhooks1"


class Receiver:
    """A merchant endpoint that records requests and verifies both signature schemes itself."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, dict[str, str]]] = []
        self.server: TestServer | None = None

    async def start(self) -> Receiver:
        app = web.Application()

        async def receive(request: web.Request) -> web.Response:
            self.requests.append((await request.read(), dict(request.headers)))
            return web.Response(text="received")

        app.router.add_post("/hooks", receive)
        self.server = TestServer(app, host="127.0.0.1")
        await self.server.start_server()
        return self

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("/hooks"))


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    started = await Receiver().start()
    yield started
    assert started.server is not None
    await started.server.close()


def legacy_valid(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    expected = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, headers["X-Webhook-Signature"])


def standard_valid(secret: str, body: bytes, headers: dict[str, str]) -> bool:
    encoded = secret.removeprefix("whsec_")
    try:
        key = base64.b64decode(encoded, validate=True)
    except ValueError:
        key = encoded.encode()
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return expected in headers["webhook-signature"].split(" ")


def assert_error(body: dict[str, Any], code: str, field: str | None = None) -> None:
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["description"]
    if field is not None:
        assert body["error"]["field"] == field


async def insert_delivery(
    pool: asyncpg.Pool,
    merchant_id: str,
    *,
    event: str = "payment.success",
    status: str = "success",
    created_at: datetime | None = None,
    leased: bool = False,
) -> str:
    endpoint_id = await pool.fetchval("SELECT id FROM webhook_endpoints WHERE merchant_id = $1", merchant_id)
    delivery_id = new_delivery_id()
    body = webhook_body(event, datetime.fromtimestamp(1700000000, UTC), {"payment": {"id": "pay_1"}})
    await pool.execute(
        """INSERT INTO webhook_deliveries
               (id, merchant_id, endpoint_id, event_id, event_type, payload, event_at, status, attempts,
                last_attempt_at, response_code, response_body, duration_ms, created_at, due_at, lease_token)
           VALUES ($1, $2, $3, $4, $5, $6, now(), $7, 1, now(), 200, 'ok', 12, $8, $9, $10)""",
        delivery_id,
        merchant_id,
        endpoint_id,
        str(uuid_utils.uuid7()),
        event,
        body,
        status,
        created_at or datetime.now(UTC),
        datetime.now(UTC) + timedelta(seconds=60) if leased else None,
        uuid_utils.uuid4() if leased else None,
    )
    return delivery_id


async def configure(
    client: Client, url: str, headers: dict[str, str] = AUTH, **fields: Any
) -> dict[str, Any]:
    response = await client.put("/api/v1/webhooks/config", json={"url": url, **fields}, headers=headers)
    assert response.status == 200, await response.text()
    config: dict[str, Any] = await response.json()
    return config


# --- auth ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/webhooks/config"),
        ("PUT", "/api/v1/webhooks/config"),
        ("POST", "/api/v1/webhooks/config/rotate-secret"),
        ("POST", "/api/v1/webhooks/test"),
        ("GET", "/api/v1/webhooks"),
        ("POST", "/api/v1/webhooks/msg_x/retry"),
    ],
)
async def test_every_endpoint_requires_the_merchant_credentials(api: Client, method: str, path: str) -> None:
    missing = await api.request(method, path)
    assert missing.status == 401
    assert_error(await missing.json(), "AUTHENTICATION_ERROR")
    wrong = await api.request(method, path, headers={**AUTH, "X-Api-Secret": "wrong"})
    assert wrong.status == 401


# --- configuration ------------------------------------------------------------------------------------


async def test_config_defaults_to_no_url_and_the_seeded_secret(api: Client) -> None:
    response = await api.get("/api/v1/webhooks/config", headers=AUTH)
    assert response.status == 200
    config = await response.json()
    assert config["url"] is None
    assert config["events"] == ["*"]
    assert config["enabled"] is False
    assert config["secret"] == "whsec_test_abc123"
    assert config["previous_secret_expires_at"] is None


async def test_put_config_saves_and_replaces(api: Client) -> None:
    config = await configure(api, "https://93.184.216.34/hooks")
    assert config["url"] == "https://93.184.216.34/hooks"
    assert config["events"] == ["*"]
    assert config["enabled"] is True
    assert config["secret"] == "whsec_test_abc123"

    config = await configure(
        api, "https://93.184.216.34/v2", events=["payment.success", "refund.processed", "payment.success"]
    )
    assert config["events"] == ["payment.success", "refund.processed"]
    fetched = await (await api.get("/api/v1/webhooks/config", headers=AUTH)).json()
    assert fetched == config

    disabled = await configure(api, "https://93.184.216.34/v2", enabled=False, events=["*"])
    assert disabled["enabled"] is False and disabled["events"] == ["*"]
    assert disabled["disabled_reason"] == "disabled by the merchant"
    enabled = await configure(api, "https://93.184.216.34/v2")
    assert enabled["enabled"] is True and enabled["disabled_reason"] is None


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": 42}, "url"),
        ({"url": "ftp://merchant.example/hooks"}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "https://"}, "url"),
        ({"url": "https://93.184.216.34/" + "a" * 2100}, "url"),
        ({"url": "https://93.184.216.34/h", "events": []}, "events"),
        ({"url": "https://93.184.216.34/h", "events": "payment.success"}, "events"),
        ({"url": "https://93.184.216.34/h", "events": ["payment.exploded"]}, "events"),
        ({"url": "https://93.184.216.34/h", "events": ["*", "payment.success"]}, "events"),
        ({"url": "https://93.184.216.34/h", "events": ["provider_event.received"]}, "events"),
        ({"url": "https://93.184.216.34/h", "enabled": "yes"}, "enabled"),
        ({"url": "https://93.184.216.34/h", "secret": "whsec_mine"}, "secret"),
    ],
)
async def test_put_config_rejects_bad_input(api: Client, body: dict[str, Any], field: str) -> None:
    response = await api.put("/api/v1/webhooks/config", json=body, headers=AUTH)
    assert response.status == 422
    assert_error(await response.json(), "VALIDATION_ERROR", field)


async def test_put_config_rejects_malformed_bodies(api: Client) -> None:
    for raw in (b"{not json", b"[1, 2]", b""):
        response = await api.put("/api/v1/webhooks/config", data=raw, headers=AUTH)
        assert response.status == 400
        assert_error(await response.json(), "BAD_REQUEST_ERROR")
    huge = orjson.dumps({"url": "https://93.184.216.34/h", "pad": "x" * 70_000})
    response = await api.put("/api/v1/webhooks/config", data=huge, headers=AUTH)
    assert response.status == 413


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hooks",
        "http://localhost/hooks",
        "http://10.0.0.5/hooks",
        "http://192.168.1.10/hooks",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hooks",
        "http://[::ffff:127.0.0.1]/hooks",
        "http://0.0.0.0/hooks",
        "http://224.0.0.1/hooks",
        "http://100.64.1.1/hooks",
    ],
)
async def test_private_urls_are_refused_unless_allowed(strict_api: Client, url: str) -> None:
    response = await strict_api.put("/api/v1/webhooks/config", json={"url": url}, headers=AUTH)
    assert response.status == 422
    assert_error(await response.json(), "VALIDATION_ERROR", "url")


@pytest.mark.parametrize("case", DEV_MODE_URL_CASES, ids=lambda case: case.why)
async def test_dev_mode_judges_each_url_as_the_dispatcher_does(api: Client, case: UrlCase) -> None:
    """The `api` fixture runs as `make run` does (loopback listed); the dispatcher's tests hold its
    attempts to the same table."""
    before = await configure(api, "http://127.0.0.1:9/before")
    url = case.url(9)
    response = await api.put("/api/v1/webhooks/config", json={"url": url}, headers=AUTH)
    if case.permitted:
        assert response.status == 200, await response.text()
        assert (await response.json())["url"] == url
    else:
        assert response.status == 422, await response.text()
        assert_error(await response.json(), "VALIDATION_ERROR", "url")
        after = await (await api.get("/api/v1/webhooks/config", headers=AUTH)).json()
        assert after["url"] == before["url"]


async def test_public_address_is_accepted_when_private_ones_are_refused(strict_api: Client) -> None:
    config = await configure(strict_api, "https://93.184.216.34/hooks")
    assert config["url"] == "https://93.184.216.34/hooks"


async def test_rotate_secret_keeps_the_old_one_live_for_24_hours(api: Client, db_pool: asyncpg.Pool) -> None:
    await configure(api, "https://93.184.216.34/hooks")
    response = await api.post("/api/v1/webhooks/config/rotate-secret", headers=AUTH)
    assert response.status == 200
    config = await response.json()
    new_secret = config["secret"]
    assert new_secret.startswith("whsec_") and new_secret != "whsec_test_abc123"
    assert len(base64.b64decode(new_secret.removeprefix("whsec_"), validate=True)) == 32
    expires = datetime.fromisoformat(config["previous_secret_expires_at"].replace("Z", "+00:00"))
    assert abs((expires - datetime.now(UTC)) - timedelta(hours=24)) < timedelta(minutes=1)
    assert config["url"] == "https://93.184.216.34/hooks"
    previous = await db_pool.fetchrow(
        "SELECT secret FROM webhook_previous_secrets WHERE merchant_id = $1", TEST_MERCHANT
    )
    assert previous is not None and previous["secret"] == "whsec_test_abc123"
    assert (await (await api.get("/api/v1/webhooks/config", headers=AUTH)).json())["secret"] == new_secret

    again = await (await api.post("/api/v1/webhooks/config/rotate-secret", headers=AUTH)).json()
    assert again["secret"] not in (new_secret, "whsec_test_abc123")
    previous = await db_pool.fetchrow(
        "SELECT secret FROM webhook_previous_secrets WHERE merchant_id = $1", TEST_MERCHANT
    )
    assert previous is not None and previous["secret"] == new_secret


async def test_disabling_the_endpoint_fails_deliveries_still_waiting(
    api: Client, db_pool: asyncpg.Pool
) -> None:
    await configure(api, "https://93.184.216.34/hooks")
    waiting = await insert_delivery(db_pool, TEST_MERCHANT, status="pending")
    in_flight = await insert_delivery(db_pool, TEST_MERCHANT, status="pending", leased=True)

    await configure(api, "https://93.184.216.34/hooks", enabled=False)

    rows = {
        r["id"]: r for r in await db_pool.fetch("SELECT id, status, due_at, error FROM webhook_deliveries")
    }
    assert rows[waiting]["status"] == "failed" and rows[waiting]["due_at"] is None
    assert "disabled" in rows[waiting]["error"]
    # An attempt in flight is left to its dispatcher, which fails it when it sees the endpoint disabled.
    assert rows[in_flight]["status"] == "pending"


# --- delivery logs ----------------------------------------------------------------------------------


async def test_logs_are_newest_first_paginated_and_filtered(
    api: Client, db_pool: asyncpg.Pool, other_merchant: str
) -> None:
    await configure(api, "https://93.184.216.34/hooks")
    await configure(api, "https://93.184.216.35/hooks", headers=OTHER_AUTH)
    base = datetime.now(UTC) - timedelta(minutes=10)
    ids = [
        await insert_delivery(
            db_pool, TEST_MERCHANT, event="payment.created", status="success", created_at=base
        ),
        await insert_delivery(
            db_pool,
            TEST_MERCHANT,
            event="payment.success",
            status="failed",
            created_at=base + timedelta(minutes=1),
        ),
        await insert_delivery(
            db_pool,
            TEST_MERCHANT,
            event="payment.success",
            status="pending",
            created_at=base + timedelta(minutes=2),
        ),
    ]
    await insert_delivery(db_pool, other_merchant, event="payment.success", status="failed")

    page = await (await api.get("/api/v1/webhooks?limit=2&offset=0", headers=AUTH)).json()
    assert set(page) == {"data", "total", "limit", "offset"}
    assert (page["total"], page["limit"], page["offset"]) == (3, 2, 0)
    assert [log["id"] for log in page["data"]] == [ids[2], ids[1]]
    log = page["data"][0]
    assert set(log) == LOG_FIELDS
    assert log["event"] == "payment.success"
    assert log["payload"] == {
        "event": "payment.success",
        "timestamp": 1700000000,
        "data": {"payment": {"id": "pay_1"}},
    }
    assert (log["status"], log["attempts"], log["response_code"], log["response_body"]) == (
        "pending",
        1,
        200,
        "ok",
    )
    assert log["duration_ms"] == 12 and log["error"] is None
    assert log["created_at"].endswith("Z") and log["last_attempt_at"].endswith("Z")

    rest = await (await api.get("/api/v1/webhooks?limit=2&offset=2", headers=AUTH)).json()
    assert [log["id"] for log in rest["data"]] == [ids[0]]
    beyond = await (await api.get("/api/v1/webhooks?offset=50", headers=AUTH)).json()
    assert beyond["data"] == [] and beyond["total"] == 3

    default = await (await api.get("/api/v1/webhooks", headers=AUTH)).json()
    assert (default["limit"], default["offset"], len(default["data"])) == (10, 0, 3)
    failed = await (await api.get("/api/v1/webhooks?status=failed", headers=AUTH)).json()
    assert [log["id"] for log in failed["data"]] == [ids[1]] and failed["total"] == 1
    created = await (await api.get("/api/v1/webhooks?event=payment.created", headers=AUTH)).json()
    assert [log["id"] for log in created["data"]] == [ids[0]]
    both = await (await api.get("/api/v1/webhooks?event=payment.success&status=pending", headers=AUTH)).json()
    assert [log["id"] for log in both["data"]] == [ids[2]]

    theirs = await (await api.get("/api/v1/webhooks", headers=OTHER_AUTH)).json()
    assert theirs["total"] == 1 and theirs["data"][0]["id"] not in ids


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("offset=-1", "offset"),
        ("status=lost", "status"),
    ],
)
async def test_log_query_is_validated(api: Client, query: str, field: str) -> None:
    response = await api.get(f"/api/v1/webhooks?{query}", headers=AUTH)
    assert response.status == 422
    assert_error(await response.json(), "VALIDATION_ERROR", field)


async def test_manual_retry_makes_the_delivery_due_now(api: Client, db_pool: asyncpg.Pool) -> None:
    await configure(api, "https://93.184.216.34/hooks")
    delivery_id = await insert_delivery(db_pool, TEST_MERCHANT, status="failed")

    response = await api.post(f"/api/v1/webhooks/{delivery_id}/retry", headers=AUTH)

    assert response.status == 202
    log = await response.json()
    assert set(log) == LOG_FIELDS
    assert log["id"] == delivery_id and log["status"] == "pending"
    next_retry = datetime.fromisoformat(log["next_retry_at"].replace("Z", "+00:00"))
    assert abs(next_retry - datetime.now(UTC)) < timedelta(seconds=5)
    row = await db_pool.fetchrow(
        "SELECT due_at, lease_token FROM webhook_deliveries WHERE id = $1", delivery_id
    )
    assert row is not None and row["due_at"] is not None and row["lease_token"] is None


async def test_manual_retry_refusals(api: Client, db_pool: asyncpg.Pool, other_merchant: str) -> None:
    await configure(api, "https://93.184.216.34/hooks")
    await configure(api, "https://93.184.216.35/hooks", headers=OTHER_AUTH)
    theirs = await insert_delivery(db_pool, other_merchant, status="failed")
    in_flight = await insert_delivery(db_pool, TEST_MERCHANT, status="pending", leased=True)

    for unknown in (theirs, "msg_doesnotexist", "../config"):
        response = await api.post(f"/api/v1/webhooks/{unknown}/retry", headers=AUTH)
        assert response.status == 404
        assert_error(await response.json(), "NOT_FOUND_ERROR")
    busy = await api.post(f"/api/v1/webhooks/{in_flight}/retry", headers=AUTH)
    assert busy.status == 409
    assert_error(await busy.json(), "WEBHOOK_ATTEMPT_IN_PROGRESS")

    mine = await insert_delivery(db_pool, TEST_MERCHANT, status="failed")
    await configure(api, "https://93.184.216.34/hooks", enabled=False)
    disabled = await api.post(f"/api/v1/webhooks/{mine}/retry", headers=AUTH)
    assert disabled.status == 400
    assert_error(await disabled.json(), "WEBHOOK_ENDPOINT_DISABLED")


async def test_test_send_needs_an_enabled_endpoint(api: Client) -> None:
    response = await api.post("/api/v1/webhooks/test", headers=AUTH)
    assert response.status == 400
    assert_error(await response.json(), "WEBHOOK_NOT_CONFIGURED")
    await configure(api, "https://93.184.216.34/hooks", enabled=False)
    response = await api.post("/api/v1/webhooks/test", headers=AUTH)
    assert response.status == 400
    assert_error(await response.json(), "WEBHOOK_ENDPOINT_DISABLED")


# --- end to end with a real dispatcher process ------------------------------------------------------


async def test_test_send_rotation_and_manual_retry_reach_the_receiver(
    api: Client,
    receiver: Receiver,
    service_env: dict[str, str],
    spawn_service: Callable[..., ServiceProcess],
    redis: aioredis.Redis,  # an empty stream: a new group starts at 0 and would send what others left
) -> None:
    spawn_service("webhook_dispatcher", service_env)
    await configure(api, receiver.url)

    sent = await api.post("/api/v1/webhooks/test", headers=AUTH)
    assert sent.status == 202
    test_log = await sent.json()
    assert test_log["event"] == "webhook.test" and test_log["status"] == "pending"

    async def received(count: int) -> None:
        """Wait for the receiver's `count`th request; on a timeout, say what the delivery log shows."""
        try:
            await eventually(lambda: len(receiver.requests) >= count, timeout=DISPATCH_WAIT_S)
        except AssertionError:
            logs = (await (await api.get("/api/v1/webhooks", headers=AUTH)).json())["data"]
            raise AssertionError(f"request {count} never came; the delivery log: {logs!r}") from None

    await received(1)
    [(body, headers)] = receiver.requests
    assert orjson.loads(body)["event"] == "webhook.test"
    assert body == orjson.dumps(test_log["payload"])
    assert headers["webhook-id"] == test_log["id"]
    assert legacy_valid("whsec_test_abc123", body, headers)
    assert standard_valid("whsec_test_abc123", body, headers)

    async def logged(delivery_id: str, attempts: int) -> dict[str, Any] | None:
        logs = (await (await api.get("/api/v1/webhooks?event=webhook.test", headers=AUTH)).json())["data"]
        found = [log for log in logs if log["id"] == delivery_id]
        return (
            found[0]
            if found and found[0]["attempts"] == attempts and found[0]["status"] == "success"
            else None
        )

    done = await eventually(lambda: logged(test_log["id"], 1), timeout=DISPATCH_WAIT_S)
    assert (done["response_code"], done["response_body"], done["next_retry_at"]) == (200, "received", None)

    rotated = await (await api.post("/api/v1/webhooks/config/rotate-secret", headers=AUTH)).json()
    second = await (await api.post("/api/v1/webhooks/test", headers=AUTH)).json()
    await received(2)
    body, headers = receiver.requests[1]
    assert headers["webhook-id"] == second["id"]
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert standard_valid(rotated["secret"], body, headers)
    assert standard_valid("whsec_test_abc123", body, headers)
    assert legacy_valid(rotated["secret"], body, headers)
    assert hmac.compare_digest(
        headers["X-Webhook-Signature-Previous"],
        hmac.new(b"whsec_test_abc123", body, hashlib.sha256).hexdigest(),
    )

    retried = await api.post(f"/api/v1/webhooks/{test_log['id']}/retry", headers=AUTH)
    assert retried.status == 202
    await received(3)
    assert len(receiver.requests) == 3
    body, headers = receiver.requests[2]
    assert headers["webhook-id"] == test_log["id"]
    assert body == receiver.requests[0][0]  # the same bytes, signed anew with today's secrets
    assert standard_valid(rotated["secret"], body, headers)
    await eventually(lambda: logged(test_log["id"], 2), timeout=DISPATCH_WAIT_S)
