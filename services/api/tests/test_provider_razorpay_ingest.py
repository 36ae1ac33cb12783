"""Razorpay webhook ingest against the real app, PostgreSQL and Redis: verify, de-duplicate, store."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from paystream.web import POOL
from paystream_api.app import create_app
from paystream_api.settings import ApiSettings
from paystream_devstack.testing import eventually
from paystream_devstack.testing import provider_payloads as payloads
from paystream_devstack.testing.rawhttp import raw_request

RAZORPAY_EVENT_TYPES: list[str] = payloads.RAZORPAY_EVENT_TYPES
razorpay = payloads.razorpay
razorpay_request = payloads.razorpay_request
razorpay_signature = payloads.razorpay_signature

URL = "/api/v1/providers/razorpay/webhook"
PRIORITY_TYPES = {t for t in RAZORPAY_EVENT_TYPES if t.startswith(("payment.dispute.", "payment.downtime."))}


@pytest.fixture
def secret(service_env: dict[str, str]) -> str:
    return service_env["RAZORPAY_WEBHOOK_SECRET"]


async def stored_events(db_pool: asyncpg.Pool) -> list[asyncpg.Record]:
    return list(await db_pool.fetch("SELECT * FROM provider_events ORDER BY received_at, event_id"))


async def assert_nothing_stored(db_pool: asyncpg.Pool) -> None:
    assert await db_pool.fetchval("SELECT count(*) FROM provider_events") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_every_event_type_is_stored_waiting_with_its_priority_and_nothing_else(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    for n, event_type in enumerate(RAZORPAY_EVENT_TYPES):
        body, headers = razorpay_request(razorpay(event_type), secret, f"evt_{n:04d}")
        response = await api.post(URL, data=body, headers=headers)
        assert response.status == 200, (event_type, await response.text())
        assert await response.json() == {"status": "ok"}

    rows = {row["event_id"]: row for row in await stored_events(db_pool)}
    assert len(rows) == len(RAZORPAY_EVENT_TYPES)
    for n, event_type in enumerate(RAZORPAY_EVENT_TYPES):
        row = rows[f"evt_{n:04d}"]
        assert row["provider"] == "razorpay"
        assert row["type"] == event_type
        assert row["status"] == "received"
        assert row["merchant_id"] == "mer_test0000000001"
        assert row["account_id"] == "acc_BFQ7uQEaa7j2z7"
        assert orjson.loads(row["payload"]) == razorpay(event_type)  # the raw event, as sent
        assert row["received_at"] is not None
        assert row["priority"] == (1 if event_type in PRIORITY_TYPES else 0), event_type
        assert row["attempts"] == 0
    # The row is the processor's work: no outbox entry, no stream hop.
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_a_stored_event_wakes_the_processors_after_its_commit(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool, database_url: str
) -> None:
    woken: asyncio.Queue[str] = asyncio.Queue()
    listener = await asyncpg.connect(database_url)
    try:
        await listener.add_listener("provider_events", lambda *args: woken.put_nowait(args[2]))
        body, headers = razorpay_request(razorpay("payment.captured"), secret, "evt_wakes")
        response = await api.post(URL, data=body, headers=headers)
        assert response.status == 200
        assert await asyncio.wait_for(woken.get(), timeout=10) == "provider_events"
        # By then the row is committed: a processor woken by it finds it.
        assert (
            await db_pool.fetchval("SELECT status FROM provider_events WHERE event_id = 'evt_wakes'")
            == "received"
        )
    finally:
        await listener.close()


async def test_the_payload_is_stored_byte_for_byte_as_the_provider_sent_it(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    document = razorpay("payment.captured")
    document["payload"]["payment"]["entity"]["notes"] = {
        "name": "Zoë \u20b9 café 🎉",  # non-ASCII, escaped and raw
        "quote": 'say "hi"\\ back\nslash',
        "control": "tab\there",
    }
    # Indented, with a trailing newline and unicode escapes: none of it may be normalised away.
    body = orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)
    body = body.replace("Zoë".encode(), b"Zo\\u00eb")
    headers = {
        "Content-Type": "application/json",
        "X-Razorpay-Signature": razorpay_signature(body, secret),
        "x-razorpay-event-id": "evt_exact_bytes",
    }
    response = await api.post(URL, data=body, headers=headers)
    assert response.status == 200, await response.text()
    stored = await db_pool.fetchval("SELECT payload FROM provider_events WHERE event_id = 'evt_exact_bytes'")
    assert stored.encode() == body


async def test_a_wrong_signature_is_refused_and_nothing_is_stored(
    api: TestClient[web.Request, web.Application], db_pool: asyncpg.Pool
) -> None:
    body, headers = razorpay_request(razorpay("payment.captured"), "not-the-secret", "evt_wrong")
    response = await api.post(URL, data=body, headers=headers)
    assert response.status == 401
    error = (await response.json())["error"]
    assert error["code"] == "AUTHENTICATION_ERROR"
    await assert_nothing_stored(db_pool)


async def test_a_missing_or_malformed_signature_is_refused(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    body, headers = razorpay_request(razorpay("payment.captured"), secret, "evt_nosig")
    for signature in (None, "", "zz" * 32, "é" * 64, headers["X-Razorpay-Signature"][:-2]):
        sent = {k: v for k, v in headers.items() if k != "X-Razorpay-Signature"}
        if signature is not None:
            sent["X-Razorpay-Signature"] = signature
        response = await api.post(URL, data=body, headers=sent)
        assert response.status == 401, signature
        assert "error" in await response.json()
    await assert_nothing_stored(db_pool)


async def test_a_signature_over_other_bytes_is_refused_even_when_the_json_is_equal(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    document = razorpay("payment.captured")
    signed_body, headers = razorpay_request(document, secret, "evt_reformatted")
    reformatted = orjson.dumps(document, option=orjson.OPT_INDENT_2)  # same JSON, other bytes
    response = await api.post(URL, data=reformatted, headers=headers)
    assert response.status == 401
    tampered = signed_body.replace(b"50000", b"90000", 1)
    response = await api.post(URL, data=tampered, headers=headers)
    assert response.status == 401
    await assert_nothing_stored(db_pool)


async def test_a_replayed_event_is_answered_200_and_changes_nothing(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    body, headers = razorpay_request(razorpay("payment.captured"), secret, "evt_replayed")
    for _ in range(3):
        response = await api.post(URL, data=body, headers=headers)
        assert response.status == 200
    assert len(await stored_events(db_pool)) == 1


async def test_ten_concurrent_copies_make_one_row(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    body, headers = razorpay_request(razorpay("payment.captured"), secret, "evt_concurrent")
    responses = await asyncio.gather(*(api.post(URL, data=body, headers=headers) for _ in range(10)))
    assert [response.status for response in responses] == [200] * 10
    rows = await stored_events(db_pool)
    assert [row["event_id"] for row in rows] == ["evt_concurrent"]


async def test_many_concurrent_events_each_stored_once(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    """Group commit under concurrency: 200 distinct events, each sent twice at once."""
    requests = []
    for n in range(200):
        body, headers = razorpay_request(razorpay("payment.captured"), secret, f"evt_many_{n:03d}")
        requests += [(body, headers), (body, headers)]
    responses = await asyncio.gather(*(api.post(URL, data=b, headers=h) for b, h in requests))
    assert {response.status for response in responses} == {200}
    assert await db_pool.fetchval("SELECT count(*) FROM provider_events") == 200
    assert await db_pool.fetchval("SELECT count(DISTINCT event_id) FROM provider_events") == 200


async def test_a_signed_body_that_is_not_json_is_400_and_not_stored(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    body = b"event=payment.captured&id=pay_1"
    headers = {"X-Razorpay-Signature": razorpay_signature(body, secret), "x-razorpay-event-id": "evt_form"}
    response = await api.post(URL, data=body, headers=headers)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "BAD_REQUEST_ERROR"
    await assert_nothing_stored(db_pool)


async def test_a_body_over_1_mb_is_413_json(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    document = razorpay("payment.captured", padding="x" * (1024 * 1024))
    body, headers = razorpay_request(document, secret, "evt_big")
    response = await api.post(URL, data=io.BytesIO(body), headers=headers)
    assert response.status == 413
    assert (await response.json())["error"]["code"] == "PAYLOAD_TOO_LARGE"
    await assert_nothing_stored(db_pool)
    # Just under the limit is fine.
    document = razorpay("payment.captured")
    document["padding"] = "x" * (1024 * 1024 - len(orjson.dumps(document)) - 20)
    body, headers = razorpay_request(document, secret, "evt_almost_big")
    assert len(body) <= 1024 * 1024
    response = await api.post(URL, data=io.BytesIO(body), headers=headers)
    assert response.status == 200


@pytest.mark.parametrize(
    ("case", "expected_reason"),
    [
        ("no_event_id", "x-razorpay-event-id header is missing"),
        ("no_event", "`event` is missing"),
        ("no_payload", "`payload` is missing"),
        ("array", "not a JSON object"),
    ],
)
async def test_signed_but_incomplete_events_are_stored_rejected_with_the_reason(
    api: TestClient[web.Request, web.Application],
    secret: str,
    db_pool: asyncpg.Pool,
    case: str,
    expected_reason: str,
) -> None:
    document: Any = razorpay("payment.captured")
    event_id: str | None = "evt_incomplete"
    if case == "no_event_id":
        event_id = None
    elif case == "no_event":
        del document["event"]
    elif case == "no_payload":
        document["payload"] = "nothing"
    elif case == "array":
        document = [document]
    body = orjson.dumps(document)
    headers = {"X-Razorpay-Signature": razorpay_signature(body, secret)}
    if event_id:
        headers["x-razorpay-event-id"] = event_id
    for _ in range(2):  # the provider's retry of a rejected event stores nothing more
        response = await api.post(URL, data=body, headers=headers)
        assert response.status == 200
    rows = await stored_events(db_pool)
    assert len(rows) == 1
    assert rows[0]["status"] == "rejected"
    assert expected_reason in rows[0]["reason"]
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0  # nothing to process


async def test_events_are_attributed_to_the_account_whose_secret_signed_them(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ('mer_other000000001', 'Other', 'other@example.com', 'key_other', 'x', 'whsec_other')"""
    )
    await db_pool.execute(
        """INSERT INTO provider_accounts (id, provider, account_id, merchant_id, webhook_secret)
           VALUES ('pacc_other', 'razorpay', 'acc_OtherAccount01', 'mer_other000000001', 'other-secret')"""
    )
    document = razorpay("payment.captured", account_id="acc_OtherAccount01")
    body, headers = razorpay_request(document, "other-secret", "evt_other_account")

    async def accepted() -> bool:  # a new account is picked up on the first miss after a second
        response = await api.post(URL, data=body, headers=headers)
        return response.status == 200

    await eventually(accepted, timeout=5, interval=0.3)
    row = await db_pool.fetchrow("SELECT * FROM provider_events WHERE event_id = 'evt_other_account'")
    assert row["merchant_id"] == "mer_other000000001"
    assert row["provider_account_id"] == "pacc_other"
    # The other account's events signed with the test account's secret are refused...
    forged, forged_headers = razorpay_request(document, "other-secret-not", "evt_forged")
    assert (await api.post(URL, data=forged, headers=forged_headers)).status == 401
    # ...and the test account's secret still works for its own events.
    own, own_headers = razorpay_request(razorpay("payment.captured"), secret, "evt_own")
    assert (await api.post(URL, data=own, headers=own_headers)).status == 200
    own_row = await db_pool.fetchrow("SELECT merchant_id FROM provider_events WHERE event_id = 'evt_own'")
    assert own_row["merchant_id"] == "mer_test0000000001"


async def test_the_answer_is_503_when_the_event_cannot_be_stored(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    app = api.server.app
    assert app is not None
    app[POOL].terminate()  # the database connection is gone
    body, headers = razorpay_request(razorpay("payment.captured"), secret, "evt_unstorable")
    response = await api.post(URL, data=body, headers=headers)
    assert response.status == 503
    payload = await response.json()
    assert payload["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "Traceback" not in await response.text()
    await assert_nothing_stored(db_pool)


@pytest.mark.parametrize(
    "event_id",
    # (Control characters never get this far: aiohttp's parser refuses them; see test_http_errors.py.)
    [b"evt_\xff\xfe", b"evt_caf\xc3\xa9", b"evt with space", b"e" * 201],
    ids=["not-utf8", "non-ascii", "space", "too-long"],
)
async def test_a_malformed_event_id_header_is_400_and_never_stops_intake(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool, event_id: bytes
) -> None:
    body, headers = razorpay_request(razorpay("payment.captured"), secret, None)
    raw_headers = [
        ("Content-Type", "application/json"),
        ("X-Razorpay-Signature", headers["X-Razorpay-Signature"]),
        ("x-razorpay-event-id", event_id),
    ]
    # More requests than the ingest has writers: before the fix, each one killed a writer.
    for _ in range(3):
        response = await raw_request(api.host, api.port, "POST", URL, raw_headers, body)
        assert response.status == 400
        assert orjson.loads(response.body)["error"]["field"] == "x-razorpay-event-id"
    await assert_nothing_stored(db_pool)
    good, good_headers = razorpay_request(razorpay("payment.captured"), secret, "evt_after_bad_ones")
    async with asyncio.timeout(10):
        response = await api.post(URL, data=good, headers=good_headers)
    assert response.status == 200
    assert [row["event_id"] for row in await stored_events(db_pool)] == ["evt_after_bad_ones"]


async def test_a_signed_event_holding_a_nul_is_stored_rejected_and_never_queued(
    api: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    document = razorpay("payment.captured")
    document["payload"]["payment"]["entity"]["notes"] = {"salon_id": "7\x00", "k\x00": "v"}
    body, headers = razorpay_request(document, secret, "evt_nul")
    assert b"\\u0000" in body
    response = await api.post(URL, data=body, headers=headers)
    assert response.status == 200
    rows = await stored_events(db_pool)
    assert [(row["event_id"], row["status"]) for row in rows] == [("evt_nul", "rejected")]
    assert "NUL" in rows[0]["reason"]
    assert rows[0]["payload"] == body.decode()  # kept exactly as received, for operators
    assert await db_pool.fetchval("SELECT count(*) FROM outbox") == 0


OTHER_MERCHANT = "mer_other000000001"
OTHER_ACCOUNT_ID = "acc_OtherAccount01"
OTHER_SECRET = "other-account-secret"


@pytest.fixture
async def api_with_other_account(
    service_env: dict[str, str], db_pool: asyncpg.Pool
) -> AsyncIterator[TestClient[web.Request, web.Application]]:
    """The app, with a second merchant's Razorpay account (its own account id and secret) loaded at
    start."""
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ($1, 'Other', 'other@example.com', 'key_other', 'x', 'whsec_other')""",
        OTHER_MERCHANT,
    )
    await db_pool.execute(
        """INSERT INTO provider_accounts (id, provider, account_id, merchant_id, webhook_secret)
           VALUES ('pacc_other', 'razorpay', $1, $2, $3)""",
        OTHER_ACCOUNT_ID,
        OTHER_MERCHANT,
        OTHER_SECRET,
    )
    app = create_app(ApiSettings.from_env(service_env))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_two_merchants_sending_the_same_event_id_both_have_their_event_stored(
    api_with_other_account: TestClient[web.Request, web.Application], secret: str, db_pool: asyncpg.Pool
) -> None:
    """An event id is unique only within the account that sent it: another merchant's event with the
    same `x-razorpay-event-id` is not a duplicate of this one (nor is this one of it)."""
    api = api_with_other_account
    other = razorpay("payment.captured", account_id=OTHER_ACCOUNT_ID)
    other["payload"]["payment"]["entity"]["amount"] = 7000
    requests = [
        razorpay_request(other, OTHER_SECRET, "evt_same_id"),
        razorpay_request(razorpay("payment.captured"), secret, "evt_same_id"),
    ]
    # Both at once (one ingest batch), each retried by its provider: two events, stored once each.
    responses = await asyncio.gather(*(api.post(URL, data=b, headers=h) for b, h in requests * 3))
    assert [response.status for response in responses] == [200] * 6

    rows = {
        row["merchant_id"]: row
        for row in await db_pool.fetch("SELECT * FROM provider_events WHERE event_id = 'evt_same_id'")
    }
    assert set(rows) == {"mer_test0000000001", OTHER_MERCHANT}
    assert rows[OTHER_MERCHANT]["provider_account_id"] == "pacc_other"
    assert orjson.loads(rows[OTHER_MERCHANT]["payload"])["payload"]["payment"]["entity"]["amount"] == 7000
    assert orjson.loads(rows["mer_test0000000001"]["payload"]) == razorpay("payment.captured")
    assert {row["status"] for row in rows.values()} == {"received"}
