"""`POST /api/v1/providers/razorpay/webhook`: verify, de-duplicate, store, answer.

Order of work, cheapest refusal first: size (413), `X-Razorpay-Signature` = hex HMAC-SHA256 of the
raw body with the account's webhook secret, compared in constant time BEFORE the body is parsed
(401, nothing stored), then JSON (400), then the `x-razorpay-event-id` header, which the signature
does not cover (400 unless it is a plain id: printable ASCII, at most 200 characters). A signed
event that lacks what processing needs (the event id header, `event`, `payload`) or holds what
cannot be stored (a NUL character) is stored as `rejected` with the reason and answered 200:
retrying would not help, and operators can see it.

Dispute and downtime events are stored with the urgent priority: the payment processor claims them
ahead of a backlog.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import Any

import orjson
from aiohttp import web

from paystream.errors import AuthenticationError, BadRequestError
from paystream.inputs import contains_nul, header_token, is_text
from paystream.logging import get_logger
from paystream_api.provider_webhooks.accounts import RAZORPAY, AccountDirectory, ProviderAccount
from paystream_api.provider_webhooks.body import read_webhook_body
from paystream_api.provider_webhooks.ingest import (
    NORMAL_PRIORITY,
    RECEIVED,
    REJECTED,
    URGENT_PRIORITY,
    IngestRecord,
    store_and_count,
)
from paystream_api.provider_webhooks.keys import ACCOUNTS, INGEST_WRITER
from paystream_api.provider_webhooks.metrics import outcome_counters

log = get_logger(__name__)

SIGNATURE_HEADER = "X-Razorpay-Signature"
EVENT_ID_HEADER = "x-razorpay-event-id"
PRIORITY_PREFIXES = ("payment.dispute.", "payment.downtime.")
MAX_EVENT_ID_LENGTH = 200
# Which account's secret to try first. Only a hint: the HMAC decides, and it is checked before the
# body is parsed. `"account_id"` with the quote excludes keys like `fund_account_id`.
ACCOUNT_HINT = re.compile(rb'"account_id"\s*:\s*"([A-Za-z0-9_]{1,64})"')

OK_BODY = orjson.dumps({"status": "ok"})
OUTCOMES = outcome_counters(RAZORPAY)


def sign(body: bytes, secret: bytes) -> str:
    return hmac.new(secret, body, hashlib.sha256).hexdigest()


def _matching_account(
    candidates: tuple[ProviderAccount, ...], body: bytes, signature: bytes
) -> ProviderAccount | None:
    for account in candidates:
        if account.webhook_secret and hmac.compare_digest(
            sign(body, account.webhook_secret).encode(), signature
        ):
            return account
    return None


async def verify_signature(directory: AccountDirectory, body: bytes, header: str) -> ProviderAccount:
    """The account whose secret signed `body`, or AuthenticationError (401)."""
    signature = header.strip().lower().encode("utf-8", "replace")
    hint_match = ACCOUNT_HINT.search(body)
    hint = hint_match.group(1).decode() if hint_match else None
    account = _matching_account(directory.razorpay_candidates(hint), body, signature)
    if account is None and await directory.reload_after_miss():
        account = _matching_account(directory.razorpay_candidates(hint), body, signature)
    if account is None:
        raise AuthenticationError(f"invalid {SIGNATURE_HEADER}")
    return account


def priority_of(event_type: str) -> int:
    return URGENT_PRIORITY if event_type.startswith(PRIORITY_PREFIXES) else NORMAL_PRIORITY


def build_record(
    account: ProviderAccount, body: bytes, document: Any, event_id_header: str | None
) -> IngestRecord:
    """What to store for a verified, parsed Razorpay event: `received`, or `rejected` with a reason.
    `event_id_header` has passed the input layer already (printable ASCII, or None)."""
    fields: dict[str, Any] = document if isinstance(document, dict) else {}
    event_type = fields.get("event")
    payload_account = fields.get("account_id")
    problems: list[str] = []
    if not isinstance(document, dict):
        problems.append("the body is not a JSON object")
    if not isinstance(event_type, str) or not event_type:
        problems.append("`event` is missing")
    if not isinstance(fields.get("payload"), dict):
        problems.append("`payload` is missing or not an object")
    if contains_nul(document):
        # PostgreSQL's jsonb and text cannot hold one; retrying the same event cannot help.
        problems.append("the event contains a NUL character (\\u0000), which cannot be stored")
    event_id = event_id_header or ""
    if not event_id:
        problems.append(f"the {EVENT_ID_HEADER} header is missing")
    if account.account_id and isinstance(payload_account, str) and payload_account != account.account_id:
        problems.append("`account_id` names another account than the one whose secret signed the event")
    if not event_id:
        # Without an event id, the body's hash de-duplicates the provider's retries.
        event_id = "sha256:" + hashlib.sha256(body).hexdigest()
    type_name = (
        event_type[:200] if isinstance(event_type, str) and event_type and is_text(event_type) else "unknown"
    )
    return IngestRecord(
        provider=RAZORPAY,
        event_id=event_id,
        event_type=type_name,
        merchant_id=account.merchant_id,
        provider_account_id=account.id,
        account_id=(
            payload_account[:64]
            if isinstance(payload_account, str) and is_text(payload_account)
            else account.account_id
        ),
        payload=body.decode(),
        status=REJECTED if problems else RECEIVED,
        reason="; ".join(problems) if problems else None,
        priority=priority_of(type_name),
    )


async def razorpay_webhook(request: web.Request) -> web.Response:
    body = await read_webhook_body(request)
    header = request.headers.get(SIGNATURE_HEADER)
    if not header:
        OUTCOMES.unauthorized.inc()
        raise AuthenticationError(f"the {SIGNATURE_HEADER} header is required")
    try:
        account = await verify_signature(request.app[ACCOUNTS], body, header)
    except AuthenticationError:
        OUTCOMES.unauthorized.inc()
        log.info("razorpay.signature_mismatch", bytes=len(body))
        raise
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        OUTCOMES.invalid.inc()
        raise BadRequestError("the body is not valid JSON") from None
    # Not covered by the signature: anything but a plain id is refused before anything is stored.
    event_id = header_token(request.headers, EVENT_ID_HEADER, max_length=MAX_EVENT_ID_LENGTH)
    record = build_record(account, body, document, event_id)
    await store_and_count(request.app[INGEST_WRITER], record, OUTCOMES)
    return web.Response(body=OK_BODY, content_type="application/json")
