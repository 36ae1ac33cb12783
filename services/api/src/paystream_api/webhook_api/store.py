"""The webhook tables, as the API reads and writes them (the dispatcher owns the sending)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import uuid_utils

from paystream.db import Connection
from paystream.errors import BadRequestError
from paystream.events import EventType, utc_now
from paystream.webhooks import (
    DUE_CHANNEL,
    new_delivery_id,
    new_webhook_secret,
    webhook_body,
    webhook_test_data,
)
from paystream_api.webhook_api.validation import EndpointConfig, LogQuery

ROTATION_OVERLAP_HOURS = 24
DISABLED_BY_MERCHANT = "disabled by the merchant"
MAX_ENDPOINTS = 20

DELIVERY_COLUMNS = (
    "id, endpoint_id, event_type, payload, status, attempts, last_attempt_at, next_retry_at, "
    "response_code, response_body, duration_ms, error, created_at"
)


def new_endpoint_id() -> str:
    return "we_" + uuid_utils.uuid7().hex


async def fetch_endpoint(conn: Connection, merchant_id: str) -> asyncpg.Record | None:
    """The merchant's default endpoint (the one `/api/v1/webhooks/config` manages)."""
    row: asyncpg.Record | None = await conn.fetchrow(
        "SELECT * FROM webhook_endpoints WHERE merchant_id = $1 AND is_default AND deleted_at IS NULL",
        merchant_id,
    )
    return row


async def fetch_secrets(conn: Connection, merchant_id: str) -> tuple[str, datetime | None]:
    """The current secret and, while it is live, when the rotated-out one expires."""
    row = await conn.fetchrow(
        """SELECT m.webhook_secret, p.expires_at FROM merchants m
           LEFT JOIN webhook_previous_secrets p ON p.merchant_id = m.id AND p.expires_at > now()
           WHERE m.id = $1""",
        merchant_id,
    )
    assert row is not None  # the merchant has just authenticated
    return row["webhook_secret"], row["expires_at"]


async def save_endpoint(conn: Connection, merchant_id: str, config: EndpointConfig) -> asyncpg.Record:
    """Create or replace the merchant's default endpoint; disabling it fails the deliveries still
    waiting, enabling it starts its failure count afresh."""
    if await fetch_endpoint(conn, merchant_id) is None:
        await lock_endpoint_count(conn, merchant_id)
    row = await conn.fetchrow(
        """INSERT INTO webhook_endpoints (id, merchant_id, url, events, enabled, disabled_reason,
                                          disabled_at, is_default)
           VALUES ($1, $2, $3, $4, $5, CASE WHEN $5 THEN NULL ELSE $6 END,
                   CASE WHEN $5 THEN NULL ELSE now() END, true)
           ON CONFLICT (merchant_id) WHERE is_default AND deleted_at IS NULL DO UPDATE SET
               url = EXCLUDED.url,
               events = EXCLUDED.events,
               enabled = EXCLUDED.enabled,
               disabled_reason = CASE
                   WHEN EXCLUDED.enabled THEN NULL
                   WHEN webhook_endpoints.enabled THEN EXCLUDED.disabled_reason
                   ELSE webhook_endpoints.disabled_reason END,
               disabled_at = CASE
                   WHEN EXCLUDED.enabled THEN NULL
                   WHEN webhook_endpoints.enabled THEN now()
                   ELSE webhook_endpoints.disabled_at END,
               failing_since = CASE
                   WHEN EXCLUDED.enabled AND NOT webhook_endpoints.enabled THEN NULL
                   ELSE webhook_endpoints.failing_since END,
               updated_at = now()
           RETURNING *""",
        new_endpoint_id(),
        merchant_id,
        config.url,
        config.events,
        config.enabled,
        DISABLED_BY_MERCHANT,
    )
    assert row is not None
    if not config.enabled:
        await fail_waiting(conn, row["id"], "not sent: the merchant disabled the endpoint")
    return row


async def fail_waiting(conn: Connection, endpoint_id: str, error: str) -> None:
    """Fail the endpoint's deliveries that wait for an attempt (not those in flight: their outcome
    decides)."""
    await conn.execute(
        """UPDATE webhook_deliveries
           SET status = 'failed', due_at = NULL, next_retry_at = NULL, updated_at = now(), error = $2
           WHERE endpoint_id = $1 AND status = 'pending' AND lease_token IS NULL""",
        endpoint_id,
        error,
    )


async def lock_endpoint_count(conn: Connection, merchant_id: str) -> None:
    """Before adding an endpoint: serialize the merchant's additions (its row's lock) and refuse a
    21st endpoint."""
    await conn.execute("SELECT 1 FROM merchants WHERE id = $1 FOR UPDATE", merchant_id)
    count = await conn.fetchval(
        "SELECT count(*) FROM webhook_endpoints WHERE merchant_id = $1 AND deleted_at IS NULL", merchant_id
    )
    if count >= MAX_ENDPOINTS:
        raise BadRequestError(
            f"a merchant has at most {MAX_ENDPOINTS} webhook endpoints; delete one first",
            code="WEBHOOK_ENDPOINT_LIMIT",
        )


async def rotate_secret(conn: Connection, merchant_id: str) -> None:
    """A new current secret; the old one stays live for 24 h (a second rotation replaces it)."""
    old = await conn.fetchval("SELECT webhook_secret FROM merchants WHERE id = $1 FOR UPDATE", merchant_id)
    await conn.execute(
        """INSERT INTO webhook_previous_secrets (merchant_id, secret, expires_at)
           VALUES ($1, $2, now() + make_interval(hours => $3))
           ON CONFLICT (merchant_id) DO UPDATE SET secret = EXCLUDED.secret, expires_at = EXCLUDED.expires_at""",
        merchant_id,
        old,
        ROTATION_OVERLAP_HOURS,
    )
    await conn.execute(
        "UPDATE merchants SET webhook_secret = $2 WHERE id = $1", merchant_id, new_webhook_secret()
    )


async def create_test_delivery(conn: Connection, merchant_id: str, endpoint_id: str) -> asyncpg.Record:
    """A `webhook.test` delivery, due now, announced to the dispatchers."""
    event_id = str(uuid_utils.uuid7())
    occurred_at = utc_now()
    body = webhook_body(EventType.WEBHOOK_TEST.value, occurred_at, webhook_test_data(merchant_id))
    row = await conn.fetchrow(
        f"""INSERT INTO webhook_deliveries
                (id, merchant_id, endpoint_id, event_id, event_type, payload, event_at, due_at, next_retry_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, now(), now())
            RETURNING {DELIVERY_COLUMNS}""",
        new_delivery_id(),
        merchant_id,
        endpoint_id,
        event_id,
        EventType.WEBHOOK_TEST.value,
        body,
        occurred_at,
    )
    assert row is not None
    await conn.execute("SELECT pg_notify($1, '')", DUE_CHANNEL)
    return row


async def list_deliveries(
    conn: Connection | asyncpg.Pool, merchant_id: str, query: LogQuery
) -> tuple[list[asyncpg.Record], int]:
    """One page of the merchant's delivery logs, newest first, and how many match in all."""
    conditions = ["merchant_id = $1"]
    args: list[Any] = [merchant_id]
    if query.status is not None:
        args.append(query.status)
        conditions.append(f"status = ${len(args)}")
    if query.event is not None:
        args.append(query.event)
        conditions.append(f"event_type = ${len(args)}")
    if query.endpoint_id is not None:
        args.append(query.endpoint_id)
        conditions.append(f"endpoint_id = ${len(args)}")
    where = " AND ".join(conditions)
    total = await conn.fetchval(f"SELECT count(*) FROM webhook_deliveries WHERE {where}", *args)
    rows = await conn.fetch(
        f"""SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE {where}
            ORDER BY created_at DESC, id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}""",
        *args,
        query.limit,
        query.offset,
    )
    return list(rows), int(total)


async def lock_delivery(conn: Connection, merchant_id: str, delivery_id: str) -> asyncpg.Record | None:
    """The merchant's delivery (None when unknown or another merchant's), locked for a manual retry."""
    row: asyncpg.Record | None = await conn.fetchrow(
        """SELECT d.id, d.endpoint_id, e.enabled AND e.deleted_at IS NULL AS endpoint_enabled,
                  d.lease_token IS NOT NULL AND d.due_at > now() AS in_flight
           FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
           WHERE d.id = $1 AND d.merchant_id = $2
           FOR UPDATE OF d""",
        delivery_id,
        merchant_id,
    )
    return row


async def schedule_now(conn: Connection, delivery_id: str) -> asyncpg.Record:
    """Make the delivery due at once (an extra attempt), and wake the dispatchers."""
    row = await conn.fetchrow(
        f"""UPDATE webhook_deliveries
            SET status = 'pending', due_at = now(), next_retry_at = now(), lease_token = NULL, updated_at = now()
            WHERE id = $1
            RETURNING {DELIVERY_COLUMNS}""",
        delivery_id,
    )
    assert row is not None
    await conn.execute("SELECT pg_notify($1, '')", DUE_CHANNEL)
    return row
