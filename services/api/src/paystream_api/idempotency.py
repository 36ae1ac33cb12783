"""Idempotency keys for POST requests that create objects (orders, payments, refunds).

The protocol, per (merchant, key):

1. Claim, in a short transaction of its own and before any work: insert the key as `in_progress`
   with a fresh `claim_token` and the request's fingerprint. When the key exists, nothing is done:
   a completed key with the same fingerprint replays its stored answer, a different fingerprint is
   a 422, a key still in progress is a 409. An expired key, or a claim abandoned by a request that
   died (older than `ABANDONED_CLAIM_AFTER`, same fingerprint), is taken over with a new token.
2. Create the object in one transaction that also stores the answer and marks the key completed,
   `WHERE claim_token = <ours>`. If another request took the claim over meanwhile, that update finds
   no row and the whole transaction rolls back: however claims move, at most one transaction per
   key ever commits an object, and an object never commits without its stored answer.
3. On any error before that commit, release the claim (delete it, if still ours) so the merchant can
   retry; only answers that created something are stored and replayed.

The fingerprint is an HMAC of method, path and the canonical body (sorted keys), keyed with a
secret: a payment body holds a card number and CVV, and a plain hash of those could be brute-forced.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from dataclasses import dataclass
from datetime import timedelta

import asyncpg

from paystream.db import DATABASE_ERRORS, Connection
from paystream.errors import ConflictError, ValidationError
from paystream.logging import get_logger

log = get_logger(__name__)

HEADER = "Idempotency-Key"
KEY_TTL = timedelta(hours=24)
# A claim older than this belongs to a request that died (requests time out well before): a retry
# may take it over. Taking over is safe even when the first request is merely slow: see step 2.
ABANDONED_CLAIM_AFTER = timedelta(seconds=15)
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")
_CLAIM_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class Claim:
    """This request holds the key: it may create the object."""

    merchant_id: str
    key: str
    token: uuid.UUID


@dataclass(frozen=True, slots=True)
class StoredAnswer:
    """The key completed earlier: answer with this again."""

    status: int
    body: bytes


def validate_key(raw: str) -> str:
    if not _VALID_KEY.fullmatch(raw):
        raise ValidationError(
            f"{HEADER} must be 1 to 255 printable ASCII characters without spaces", field=HEADER
        )
    return raw


def fingerprint(secret: bytes, method: str, path: str, canonical_body: bytes) -> bytes:
    message = method.upper().encode() + b" " + path.encode() + b"\n" + canonical_body
    return hmac.new(secret, message, hashlib.sha256).digest()


def fingerprint_secret(application_secret: str) -> bytes:
    """A key for fingerprints derived from an application secret, separated from its other uses."""
    return hashlib.sha256(b"paystream/idempotency-fingerprint/v1\x00" + application_secret.encode()).digest()


async def claim(
    pool: asyncpg.Pool, merchant_id: str, key: str, request_fingerprint: bytes
) -> Claim | StoredAnswer:
    """Claim the key for this request, or return the answer stored for it; 409 or 422 otherwise."""
    token = uuid.uuid4()
    for _ in range(_CLAIM_ATTEMPTS):
        claimed = await pool.fetchval(
            """INSERT INTO idempotency_keys
                   (merchant_id, idempotency_key, fingerprint, state, claim_token, locked_at, expires_at)
               VALUES ($1, $2, $3, 'in_progress', $4, now(), now() + $5::interval)
               ON CONFLICT (merchant_id, idempotency_key) DO UPDATE
                   SET fingerprint = EXCLUDED.fingerprint, state = 'in_progress',
                       claim_token = EXCLUDED.claim_token, locked_at = now(),
                       response_status = NULL, response_body = NULL,
                       created_at = now(), expires_at = EXCLUDED.expires_at
                   WHERE idempotency_keys.expires_at <= now()
                      OR (idempotency_keys.state = 'in_progress'
                          AND idempotency_keys.fingerprint = EXCLUDED.fingerprint
                          AND idempotency_keys.locked_at < now() - $6::interval)
               RETURNING claim_token""",
            merchant_id,
            key,
            request_fingerprint,
            token,
            KEY_TTL,
            ABANDONED_CLAIM_AFTER,
        )
        if claimed is not None:
            return Claim(merchant_id, key, token)
        row = await pool.fetchrow(
            """SELECT fingerprint, state, response_status, response_body FROM idempotency_keys
               WHERE merchant_id = $1 AND idempotency_key = $2 AND expires_at > now()""",
            merchant_id,
            key,
        )
        if row is None:
            continue  # released or expired since: try to claim it again
        if not hmac.compare_digest(bytes(row["fingerprint"]), request_fingerprint):
            raise ValidationError(
                f"this {HEADER} was already used with a different request",
                field=HEADER,
                code="IDEMPOTENCY_KEY_REUSED",
            )
        if row["state"] == "completed":
            return StoredAnswer(status=int(row["response_status"]), body=bytes(row["response_body"]))
        raise ConflictError(
            f"a request with this {HEADER} is still being processed; retry shortly",
            field=HEADER,
            code="IDEMPOTENCY_KEY_IN_USE",
        )
    raise ConflictError(
        f"this {HEADER} is changing hands; retry shortly", field=HEADER, code="IDEMPOTENCY_KEY_IN_USE"
    )


async def complete(conn: Connection, held: Claim, status: int, body: bytes) -> None:
    """Store the answer with the object, in its transaction; 409 (and a rollback) if the claim was
    taken over by another request meanwhile."""
    if not conn.is_in_transaction():
        raise RuntimeError("idempotency.complete must run in the transaction that creates the object")
    stored = await conn.fetchval(
        """UPDATE idempotency_keys
           SET state = 'completed', response_status = $4, response_body = $5
           WHERE merchant_id = $1 AND idempotency_key = $2 AND claim_token = $3 AND state = 'in_progress'
           RETURNING true""",
        held.merchant_id,
        held.key,
        held.token,
        status,
        body,
    )
    if not stored:
        raise ConflictError(
            f"another request took over this {HEADER}; retry to get its answer",
            field=HEADER,
            code="IDEMPOTENCY_KEY_IN_USE",
        )


async def release(pool: asyncpg.Pool, held: Claim) -> None:
    """Give the key back after a failed attempt (best effort: an unreleased claim is taken over
    once abandoned)."""
    try:
        await pool.execute(
            """DELETE FROM idempotency_keys
               WHERE merchant_id = $1 AND idempotency_key = $2 AND claim_token = $3
                 AND state = 'in_progress'""",
            held.merchant_id,
            held.key,
            held.token,
        )
    except DATABASE_ERRORS as exc:
        log.warning("idempotency.release_failed", error=str(exc))


async def purge_expired(pool: asyncpg.Pool, batch_size: int = 5000) -> int:
    """Delete expired keys in batches; return how many were deleted."""
    total = 0
    while True:
        status: str = await pool.execute(
            """DELETE FROM idempotency_keys WHERE ctid IN (
                   SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $1)""",
            batch_size,
        )
        deleted = int(status.split()[-1])
        total += deleted
        if deleted < batch_size:
            return total
