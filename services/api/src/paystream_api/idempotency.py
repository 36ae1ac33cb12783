"""Idempotency keys for POST requests that create objects (orders, payments, refunds).

One transaction per request, and one commit: the key, the object, its events and the stored answer
commit together or not at all. Per (merchant, key), inside the creating transaction:

1. Take the key: a transaction-scoped advisory lock on a hash of (merchant, key), tried without
   waiting, in the statement that looks the key up. Not taken: another request with this key is in
   flight right now: 409. Taken: a completed key with the same fingerprint replays its stored
   answer, a different fingerprint is a 422.
2. Create the object, then insert the key, completed, with the answer. The insert replaces only an
   expired key or an `in_progress` claim abandoned by a request that died (`in_progress` rows are
   written only by the earlier two-commit protocol, during a rolling upgrade; such a request's own
   completion checks its `claim_token`, so it cannot commit once its claim was replaced). Any other
   row already there (a request that committed between our lookup's snapshot and our lock) makes
   the insert a no-op: 409 and a rollback. However requests interleave, at most one transaction per
   key commits an object, and an object never commits without its stored answer.
3. Any error before the commit rolls everything back, the key included: nothing is left to release,
   and only answers that created something are stored and replayed.

The lock is gone with the transaction, so a request that dies holds nothing. Two different keys
whose hashes collide (64 bits) only make one of two simultaneous requests a retryable 409.

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

from paystream.db import Connection
from paystream.errors import ConflictError, ValidationError
from paystream.retention import delete_in_batches

HEADER = "Idempotency-Key"
KEY_TTL = timedelta(hours=24)
# A claim older than this belongs to a request that died (requests time out well before): a retry
# may take it over. Taking over is safe even when the first request is merely slow: see step 2.
ABANDONED_CLAIM_AFTER = timedelta(seconds=15)
_VALID_KEY = re.compile(r"[\x21-\x7e]{1,255}")


@dataclass(frozen=True, slots=True)
class Claim:
    """This request holds the key (its transaction does): it may create the object."""

    merchant_id: str
    key: str
    token: uuid.UUID
    fingerprint: bytes


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


# Advisory-lock keys of idempotency keys: hashtextextended's seed keeps them apart from every other
# use of advisory locks with the same text.
_LOCK_SEED = 7_305

_TAKE = """SELECT pg_try_advisory_xact_lock(hashtextextended($1 || ' ' || $2, $3)) AS ours,
                  k.fingerprint, k.state, k.response_status, k.response_body,
                  k.locked_at < now() - $4::interval AS abandoned
           FROM (SELECT 1) AS one
           LEFT JOIN idempotency_keys AS k
                  ON k.merchant_id = $1 AND k.idempotency_key = $2 AND k.expires_at > now()"""

_STORE = """INSERT INTO idempotency_keys AS k
               (merchant_id, idempotency_key, fingerprint, state, claim_token, locked_at,
                response_status, response_body, expires_at)
           VALUES ($1, $2, $3, 'completed', $4, now(), $5, $6, now() + $7::interval)
           ON CONFLICT (merchant_id, idempotency_key) DO UPDATE
               SET fingerprint = EXCLUDED.fingerprint, state = 'completed',
                   claim_token = EXCLUDED.claim_token, locked_at = now(),
                   response_status = EXCLUDED.response_status, response_body = EXCLUDED.response_body,
                   created_at = now(), expires_at = EXCLUDED.expires_at
               WHERE k.expires_at <= now()
                  OR (k.state = 'in_progress' AND k.fingerprint = EXCLUDED.fingerprint
                      AND k.locked_at < now() - $8::interval)
           RETURNING true"""


def _in_use() -> ConflictError:
    return ConflictError(
        f"a request with this {HEADER} is still being processed; retry shortly",
        field=HEADER,
        code="IDEMPOTENCY_KEY_IN_USE",
    )


async def claim(
    conn: Connection, merchant_id: str, key: str, request_fingerprint: bytes
) -> Claim | StoredAnswer:
    """Take the key for this request inside its transaction (step 1), or return the answer stored
    for it; 409 or 422 otherwise."""
    if not conn.is_in_transaction():
        raise RuntimeError("idempotency.claim must run in the transaction that creates the object")
    row = await conn.fetchrow(_TAKE, merchant_id, key, _LOCK_SEED, ABANDONED_CLAIM_AFTER)
    assert row is not None  # one row, always: the LEFT JOIN of a single row
    if not row["ours"]:
        raise _in_use()
    if row["state"] is not None:
        if not hmac.compare_digest(bytes(row["fingerprint"]), request_fingerprint):
            raise ValidationError(
                f"this {HEADER} was already used with a different request",
                field=HEADER,
                code="IDEMPOTENCY_KEY_REUSED",
            )
        if row["state"] == "completed":
            return StoredAnswer(status=int(row["response_status"]), body=bytes(row["response_body"]))
        if not row["abandoned"]:
            raise _in_use()
    return Claim(merchant_id, key, uuid.uuid4(), request_fingerprint)


async def complete(conn: Connection, held: Claim, status: int, body: bytes) -> None:
    """Store the key, completed, with the answer, in the object's transaction (step 2); 409 (and a
    rollback) when the key was stored by another request meanwhile."""
    stored = await conn.fetchval(
        _STORE,
        held.merchant_id,
        held.key,
        held.fingerprint,
        held.token,
        status,
        body,
        KEY_TTL,
        ABANDONED_CLAIM_AFTER,
    )
    if not stored:
        raise ConflictError(
            f"another request with this {HEADER} completed meanwhile; retry to get its answer",
            field=HEADER,
            code="IDEMPOTENCY_KEY_IN_USE",
        )


PURGE_EXPIRED = """
DELETE FROM idempotency_keys WHERE ctid = ANY(ARRAY(
    SELECT ctid FROM idempotency_keys WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED))"""


async def purge_expired(pool: asyncpg.Pool) -> int:
    """Delete expired keys in batches; return how many were deleted."""
    return await delete_in_batches(pool, PURGE_EXPIRED)
