"""The merchant's webhook endpoints, as `/api/v1/webhook-endpoints` reads and writes them.

Every statement is scoped by the merchant: an endpoint id from another merchant finds nothing. A
deleted endpoint is kept (its delivery log stays readable through `GET /api/v1/webhooks`) but is
invisible here and receives nothing. The default endpoint signs with the merchant's secret (see
migration 0046); every other one with its own.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from paystream.db import Connection
from paystream.webhooks import DUE_CHANNEL, new_webhook_secret
from paystream_api.webhook_api import store
from paystream_api.webhook_api.validation import RecoverWindow

# Recovered deliveries go out at most this many a second (or at the endpoint's own rate limit).
RECOVER_PACE_PER_S = 20

_LIVE = "merchant_id = $1 AND deleted_at IS NULL"
# An endpoint row as every statement here returns it: with whether its rotated-out secret is still
# live, by the database's clock (the one that set its expiry).
_ENDPOINT = "*, COALESCE(previous_secret_expires_at > now(), false) AS previous_secret_live"


async def list_endpoints(conn: Connection | asyncpg.Pool, merchant_id: str) -> list[asyncpg.Record]:
    rows = await conn.fetch(
        f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE {_LIVE} ORDER BY created_at, id", merchant_id
    )
    return list(rows)


async def fetch(
    conn: Connection, merchant_id: str, endpoint_id: str, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    row: asyncpg.Record | None = await conn.fetchrow(
        f"SELECT {_ENDPOINT} FROM webhook_endpoints WHERE {_LIVE} AND id = $2{lock}", merchant_id, endpoint_id
    )
    return row


async def secrets_of(conn: Connection, endpoint: asyncpg.Record) -> tuple[str, datetime | None]:
    """The endpoint's current secret and, while it is live, when the rotated-out one expires."""
    if endpoint["secret"] is None:  # the default endpoint: the merchant's secret
        return await store.fetch_secrets(conn, endpoint["merchant_id"])
    live = endpoint["previous_secret_live"]
    return endpoint["secret"], endpoint["previous_secret_expires_at"] if live else None


async def create(conn: Connection, merchant_id: str, fields: dict[str, Any]) -> asyncpg.Record:
    """A new endpoint with a secret of its own (inside the caller's transaction)."""
    await store.lock_endpoint_count(conn, merchant_id)
    enabled = fields.get("enabled", True)
    row = await conn.fetchrow(
        f"""INSERT INTO webhook_endpoints
               (id, merchant_id, url, description, events, enabled, disabled_reason, disabled_at,
                headers, rate_limit_per_s, secret)
           VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 THEN NULL ELSE $7 END,
                   CASE WHEN $6 THEN NULL ELSE now() END, $8, $9, $10)
           RETURNING {_ENDPOINT}""",
        store.new_endpoint_id(),
        merchant_id,
        fields["url"],
        fields.get("description", ""),
        fields.get("events"),
        enabled,
        store.DISABLED_BY_MERCHANT,
        fields.get("headers", {}),
        fields.get("rate_limit_per_s"),
        new_webhook_secret(),
    )
    assert row is not None
    return row


async def update(conn: Connection, endpoint: asyncpg.Record, fields: dict[str, Any]) -> asyncpg.Record:
    """Apply the checked fields to the (locked) endpoint. Disabling fails the deliveries waiting for
    an attempt; enabling a disabled endpoint starts afresh (no failure run, no disabled reason); a
    new rate limit starts a new schedule."""
    assignments = [f"{column} = ${n}" for n, column in enumerate(fields, start=2)]
    args = list(fields.values())
    if "enabled" in fields:
        if fields["enabled"] and not endpoint["enabled"]:
            assignments += ["disabled_reason = NULL", "disabled_at = NULL", "failing_since = NULL"]
        elif not fields["enabled"] and endpoint["enabled"]:
            args.append(store.DISABLED_BY_MERCHANT)
            assignments += [f"disabled_reason = ${len(args) + 1}", "disabled_at = now()"]
    if "rate_limit_per_s" in fields:
        assignments.append("rate_next_at = NULL")
    row = await conn.fetchrow(
        f"""UPDATE webhook_endpoints SET {", ".join(assignments)}, updated_at = now()
            WHERE id = $1 RETURNING {_ENDPOINT}""",
        endpoint["id"],
        *args,
    )
    assert row is not None
    if endpoint["enabled"] and not row["enabled"]:
        await store.fail_waiting(conn, row["id"], "not sent: the merchant disabled the endpoint")
    return row


async def delete(conn: Connection, endpoint: asyncpg.Record) -> None:
    await conn.execute(
        """UPDATE webhook_endpoints
           SET deleted_at = now(), enabled = false, updated_at = now(),
               disabled_reason = 'deleted by the merchant', disabled_at = COALESCE(disabled_at, now())
           WHERE id = $1""",
        endpoint["id"],
    )
    await store.fail_waiting(conn, endpoint["id"], "not sent: the merchant deleted the endpoint")


async def rotate_secret(conn: Connection, endpoint: asyncpg.Record) -> asyncpg.Record:
    """A new secret; the old one stays live for 24 h (a second rotation replaces it)."""
    if endpoint["secret"] is None:
        await store.rotate_secret(conn, endpoint["merchant_id"])
        return endpoint
    row = await conn.fetchrow(
        f"""UPDATE webhook_endpoints
           SET previous_secret = secret, secret = $2, updated_at = now(),
               previous_secret_expires_at = now() + make_interval(hours => $3)
           WHERE id = $1 RETURNING {_ENDPOINT}""",
        endpoint["id"],
        new_webhook_secret(),
        store.ROTATION_OVERLAP_HOURS,
    )
    assert row is not None
    return row


# The window's deliveries whose attempt is in flight ($1 endpoint, $2 since, $3 until): marked with
# when they would have been re-sent, after the failed ones ($4 of them, at $5 a second). An attempt
# made while the endpoint was failing fails them for good an instant later if it was their last;
# the dispatcher then re-sends them at that time (migration 0047). Rows locked meanwhile are being
# written by a dispatcher that has no failure for good among them (one that has waits for this
# recovery's lock on the endpoint row first): skipped, and never waited for, which could deadlock.
MARK_IN_FLIGHT = """
UPDATE webhook_deliveries d
SET recover_at = now() + make_interval(secs => ($4 + n.place)::float8 / $5)
FROM (
    SELECT id, row_number() OVER (ORDER BY created_at, id) - 1 AS place
    FROM (
        SELECT id, created_at FROM webhook_deliveries
        WHERE endpoint_id = $1 AND status = 'pending' AND lease_token IS NOT NULL
          AND created_at >= $2 AND ($3::timestamptz IS NULL OR created_at < $3)
        FOR UPDATE SKIP LOCKED
    ) AS in_flight
) AS n
WHERE d.id = n.id"""


async def recover(conn: Connection, endpoint: asyncpg.Record, window: RecoverWindow) -> tuple[int, int]:
    """Make every failed delivery of the endpoint created in the window due again, oldest first and
    paced (one every 1/pace seconds), with the same ids (hence the same `webhook-id`s); mark those
    whose attempt is in flight to go next if that attempt fails them for good; wake the
    dispatchers. Inside the caller's transaction, which holds the endpoint row (FOR UPDATE) until it
    commits. Returns (failed deliveries recovered, pace per second)."""
    pace = min(RECOVER_PACE_PER_S, endpoint["rate_limit_per_s"] or RECOVER_PACE_PER_S)
    recovered = await conn.fetchval(
        """WITH failed AS (
               SELECT id, created_at FROM webhook_deliveries
               WHERE endpoint_id = $1 AND status = 'failed'
                 AND created_at >= $2 AND ($3::timestamptz IS NULL OR created_at < $3)
               FOR UPDATE
           ), numbered AS (
               SELECT id, row_number() OVER (ORDER BY created_at, id) - 1 AS place FROM failed
           ), scheduled AS (
               UPDATE webhook_deliveries d
               SET status = 'pending', lease_token = NULL, updated_at = now(),
                   due_at = now() + make_interval(secs => n.place::float8 / $4),
                   next_retry_at = now() + make_interval(secs => n.place::float8 / $4)
               FROM numbered n WHERE d.id = n.id
               RETURNING 1
           )
           SELECT count(*) FROM scheduled""",
        endpoint["id"],
        window.since,
        window.until,
        pace,
    )
    await conn.execute(MARK_IN_FLIGHT, endpoint["id"], window.since, window.until, recovered, pace)
    if recovered:
        await conn.execute("SELECT pg_notify($1, '')", DUE_CHANNEL)
    return int(recovered), pace
