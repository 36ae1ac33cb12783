"""Idempotency-Key on orders, payments and refunds, through the real API app (in-process aiohttp
server, real PostgreSQL): replay, mismatch, in progress, per merchant, expiry, abandoned claims,
and the protocol's guarantee that one key never commits two objects."""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient

from paystream.errors import ConflictError
from paystream_api import idempotency
from paystream_api.auth import hash_secret

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
OTHER_AUTH = {"X-Api-Key": "key_other_merchant", "X-Api-Secret": "secret_other_merchant"}
MERCHANT = "mer_test0000000001"
PAYMENT = {
    "order_id": "ord_test_001",
    "amount": 50000,
    "currency": "INR",
    "method": "upi",
    "vpa": "user@paytm",
}


def keyed(key: str, headers: dict[str, str] = AUTH) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def count(db_pool: asyncpg.Pool, sql: str) -> int:
    value: int = await db_pool.fetchval(sql)
    return value


async def test_same_key_same_body_replays_the_first_answer(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    first = await api.post("/api/v1/payments", json=PAYMENT, headers=keyed("key-1"))
    assert first.status == 201
    first_body = await first.read()
    # The same JSON with its keys in another order is the same request.
    reordered = dict(reversed(list(PAYMENT.items())))
    for body in (PAYMENT, reordered):
        again = await api.post("/api/v1/payments", json=body, headers=keyed("key-1"))
        assert again.status == 201
        assert await again.read() == first_body
        assert again.headers["Idempotent-Replayed"] == "true"
    assert await count(db_pool, "SELECT count(*) FROM payments") == 1
    assert await count(db_pool, "SELECT count(*) FROM outbox WHERE event_type = 'payment.created'") == 1
    assert await count(db_pool, "SELECT count(*) FROM outbox") == 2


async def test_same_key_different_body_is_422(api: TestClient[Any, Any], db_pool: asyncpg.Pool) -> None:
    assert (await api.post("/api/v1/payments", json=PAYMENT, headers=keyed("key-2"))).status == 201
    response = await api.post("/api/v1/payments", json={**PAYMENT, "amount": 50001}, headers=keyed("key-2"))
    assert response.status == 422
    error = (await response.json())["error"]
    assert error["code"] == "IDEMPOTENCY_KEY_REUSED" and error["field"] == "Idempotency-Key"
    # Another endpoint is another request too.
    other_path = await api.post("/api/v1/orders", json={"amount": 100}, headers=keyed("key-2"))
    assert other_path.status == 422
    assert await count(db_pool, "SELECT count(*) FROM payments") == 1
    assert await count(db_pool, "SELECT count(*) FROM orders") == 0


async def test_keys_are_per_merchant(api: TestClient[Any, Any], db_pool: asyncpg.Pool) -> None:
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ('mer_other000000001', 'Other', 'other@example.com', $1, $2, 'whsec_other')""",
        OTHER_AUTH["X-Api-Key"],
        hash_secret(OTHER_AUTH["X-Api-Secret"]),
    )
    mine = await (await api.post("/api/v1/orders", json={"amount": 100}, headers=keyed("shared"))).json()
    theirs = await api.post("/api/v1/orders", json={"amount": 100}, headers=keyed("shared", OTHER_AUTH))
    assert theirs.status == 201
    assert (await theirs.json())["id"] != mine["id"]
    assert await count(db_pool, "SELECT count(*) FROM orders") == 2


async def test_invalid_requests_do_not_use_up_the_key(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    bad = await api.post("/api/v1/payments", json={**PAYMENT, "amount": 0}, headers=keyed("key-3"))
    assert bad.status == 422
    # A business rule failing inside the transaction releases the key as well.
    order = await (await api.post("/api/v1/orders", json={"amount": 100}, headers=AUTH)).json()
    mismatch = await api.post(
        "/api/v1/payments", json={**PAYMENT, "order_id": order["id"]}, headers=keyed("key-3")
    )
    assert mismatch.status == 400
    assert await count(db_pool, "SELECT count(*) FROM idempotency_keys") == 0
    good = await api.post("/api/v1/payments", json=PAYMENT, headers=keyed("key-3"))
    assert good.status == 201


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "naïve"])
async def test_malformed_keys_are_422(api: TestClient[Any, Any], key: str) -> None:
    response = await api.post("/api/v1/orders", json={"amount": 100}, headers=keyed(key))
    assert response.status == 422
    assert (await response.json())["error"]["field"] == "Idempotency-Key"


def request_fingerprint(service_env: dict[str, str], path: str, body: dict[str, Any]) -> bytes:
    secret = idempotency.fingerprint_secret(service_env["JWT_SECRET"])
    return idempotency.fingerprint(secret, "POST", path, orjson.dumps(body, option=orjson.OPT_SORT_KEYS))


async def insert_claim(
    db_pool: asyncpg.Pool, key: str, fingerprint: bytes, *, locked_seconds_ago: float = 0
) -> None:
    await db_pool.execute(
        """INSERT INTO idempotency_keys
               (merchant_id, idempotency_key, fingerprint, state, claim_token, locked_at, expires_at)
           VALUES ($1, $2, $3, 'in_progress', $4, now() - make_interval(secs => $5), now() + interval '1 day')""",
        MERCHANT,
        key,
        fingerprint,
        uuid.uuid4(),
        locked_seconds_ago,
    )


async def test_key_still_in_progress_is_409_until_abandoned(
    api: TestClient[Any, Any], db_pool: asyncpg.Pool, service_env: dict[str, str]
) -> None:
    fingerprint = request_fingerprint(service_env, "/api/v1/payments", PAYMENT)
    await insert_claim(db_pool, "busy", fingerprint)  # another request holds it right now
    response = await api.post("/api/v1/payments", json=PAYMENT, headers=keyed("busy"))
    assert response.status == 409
    error = (await response.json())["error"]
    assert error["code"] == "IDEMPOTENCY_KEY_IN_USE" and error["field"] == "Idempotency-Key"
    assert await count(db_pool, "SELECT count(*) FROM payments") == 0

    # A claim whose request died long ago is taken over by the retry.
    await insert_claim(db_pool, "orphan", fingerprint, locked_seconds_ago=3600)
    retried = await api.post("/api/v1/payments", json=PAYMENT, headers=keyed("orphan"))
    assert retried.status == 201
    assert await count(db_pool, "SELECT count(*) FROM payments") == 1


async def test_expired_keys_are_forgotten(api: TestClient[Any, Any], db_pool: asyncpg.Pool) -> None:
    first = await (await api.post("/api/v1/orders", json={"amount": 100}, headers=keyed("old"))).json()
    await db_pool.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    second = await (await api.post("/api/v1/orders", json={"amount": 100}, headers=keyed("old"))).json()
    assert second["id"] != first["id"]
    await db_pool.execute("UPDATE idempotency_keys SET expires_at = now() - interval '1 second'")
    assert await idempotency.purge_expired(db_pool) == 1
    assert await count(db_pool, "SELECT count(*) FROM idempotency_keys") == 0


async def test_one_key_commits_one_object_however_requests_interleave(
    clean_db: str, db_pool: asyncpg.Pool
) -> None:
    """While one transaction holds a key, another with the same key is a 409 at once (no wait);
    once the first commits, the key replays its answer; and a transaction whose key was stored by
    someone else after its lookup rolls back with its object."""
    await db_pool.execute(
        """INSERT INTO merchants (id, name, email, api_key, api_secret_hash, webhook_secret)
           VALUES ($1, 'Test', 'test@example.com', 'k', 'h', 'w')""",
        MERCHANT,
    )
    fingerprint = b"f" * 32
    create_order = "INSERT INTO orders (id, merchant_id, amount, currency) VALUES ($1, $2, 1, 'INR')"
    async with db_pool.acquire() as first, db_pool.acquire() as second:
        async with first.transaction():
            held = await idempotency.claim(first, MERCHANT, "contested", fingerprint)
            assert isinstance(held, idempotency.Claim)
            with pytest.raises(ConflictError):
                async with second.transaction():
                    await idempotency.claim(second, MERCHANT, "contested", fingerprint)
            await first.execute(create_order, "order_first", MERCHANT)
            await idempotency.complete(first, held, 201, b'{"id": "order_first"}')
        async with second.transaction():
            replayed = await idempotency.claim(second, MERCHANT, "contested", fingerprint)
        assert replayed == idempotency.StoredAnswer(201, b'{"id": "order_first"}')

        with pytest.raises(ConflictError):
            async with first.transaction():
                late = await idempotency.claim(first, MERCHANT, "raced", fingerprint)
                assert isinstance(late, idempotency.Claim)
                await first.execute(create_order, "order_late", MERCHANT)
                # Stored by a request that committed after this one's lookup.
                await db_pool.execute(
                    """INSERT INTO idempotency_keys (merchant_id, idempotency_key, fingerprint, state,
                           claim_token, response_status, response_body, expires_at)
                       VALUES ($1, 'raced', $2, 'completed', $3, 201, '{}', now() + interval '1 day')""",
                    MERCHANT,
                    fingerprint,
                    uuid.uuid4(),
                )
                await idempotency.complete(first, late, 201, b'{"id": "order_late"}')
    assert [r["id"] for r in await db_pool.fetch("SELECT id FROM orders")] == ["order_first"]


async def test_refund_idempotency(api: TestClient[Any, Any], db_pool: asyncpg.Pool) -> None:
    payment = await (await api.post("/api/v1/payments", json=PAYMENT, headers=AUTH)).json()
    await db_pool.execute("UPDATE payments SET status = 'success'")
    path = f"/api/v1/payments/{payment['id']}/refunds"
    first = await api.post(path, json={"amount": 1000}, headers=keyed("refund-1"))
    again = await api.post(path, json={"amount": 1000}, headers=keyed("refund-1"))
    assert first.status == again.status == 201
    assert await first.read() == await again.read()
    assert await count(db_pool, "SELECT count(*) FROM refunds") == 1
    assert await count(db_pool, "SELECT amount_refunded FROM payments") == 1000
