"""PAYable IPG notifications: `POST /api/v1/providers/payable/webhook` (also `/api/payments/webhook`).

The checkValue lives inside the JSON body, so the body is parsed first (400 when it is not a JSON
object), then the checkValue is verified against the account named by `merchantKey` in constant time
(401, nothing stored, on a mismatch or when either is missing). A verified notification missing
what processing needs, or holding what cannot be stored (a NUL character), is stored `rejected` with
the reason and answered 200. Success or failure is read from `statusCode`, which the checkValue
covers, never from the unsigned `statusMessage`. PAYable is answered `{"Status": 200}` only once the
notification is durable, and 503 when it cannot be stored, so that PAYable retries.

A notification is identified by `payableOrderId:payableTransactionId:statusCode`: PAYable's retries
of one notification de-duplicate, while a later status of the same transaction is a new event.
Card numbers are masked again before the body is stored, in case one ever arrives unmasked.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import replace
from typing import Any

import orjson
from aiohttp import web

from paystream.errors import AuthenticationError, BadRequestError
from paystream.inputs import contains_nul
from paystream.logging import get_logger
from paystream_api.provider_webhooks.accounts import PAYABLE, AccountDirectory, ProviderAccount
from paystream_api.provider_webhooks.body import read_webhook_body
from paystream_api.provider_webhooks.checkvalue import PAYABLE_CHECK_VALUE, field_text
from paystream_api.provider_webhooks.ingest import REJECTED, IngestRecord, store_and_count
from paystream_api.provider_webhooks.keys import ACCOUNTS, INGEST_WRITER
from paystream_api.provider_webhooks.metrics import outcome_counters

log = get_logger(__name__)

REQUIRED_FIELDS = (
    "payableOrderId",
    "payableTransactionId",
    "payableAmount",
    "payableCurrency",
    "invoiceNo",
    "statusCode",
)
SUCCESS_STATUS_CODE = "1"
OK_BODY = orjson.dumps({"Status": 200})
OUTCOMES = outcome_counters(PAYABLE)
# Twelve or more digits in a row (ignoring spaces and dashes) can only be an unmasked card number.
UNMASKED_PAN = re.compile(r"\d{12,}")


def mask_card_number(value: Any) -> Any:
    """`value` unchanged when it is masked already; else only its last four digits survive."""
    if not isinstance(value, str):
        return value
    digits_only = re.sub(r"[\s-]", "", value)
    if not UNMASKED_PAN.search(digits_only):
        return value
    digits = re.sub(r"\D", "", value)
    return "*" * (len(digits) - 4) + digits[-4:]


def sanitized(notification: dict[str, Any]) -> dict[str, Any]:
    clean = dict(notification)
    clean["cardNumber"] = mask_card_number(clean.get("cardNumber"))
    if "cardNumber" not in notification:
        del clean["cardNumber"]
    token = clean.get("token")
    if isinstance(token, dict) and "maskedCardNo" in token:
        clean["token"] = {**token, "maskedCardNo": mask_card_number(token["maskedCardNo"])}
    return clean


def is_success(notification: dict[str, Any]) -> bool:
    """Success is decided by `statusCode` alone: the checkValue covers it, while `statusMessage` is
    not signed (anyone on the path could change it) and is only kept as the provider's wording."""
    return field_text(notification.get("statusCode")) == SUCCESS_STATUS_CODE


async def verify_check_value(directory: AccountDirectory, notification: dict[str, Any]) -> ProviderAccount:
    """The account named by `merchantKey` whose token produced `checkValue`, or 401."""
    merchant_key = notification.get("merchantKey")
    check_value = notification.get("checkValue")
    if not isinstance(merchant_key, str) or not merchant_key:
        raise AuthenticationError("merchantKey is required", field="merchantKey")
    if not isinstance(check_value, str) or not check_value:
        raise AuthenticationError("checkValue is required", field="checkValue")
    account = directory.payable_account(merchant_key)
    if account is None and await directory.reload_after_miss():
        account = directory.payable_account(merchant_key)
    digest = account.merchant_token_digest if account else None
    if account is None or digest is None:
        PAYABLE_CHECK_VALUE.verify(notification, "0" * 128, check_value)  # same work: no timing hint
        raise AuthenticationError("invalid checkValue", field="checkValue")
    if not PAYABLE_CHECK_VALUE.verify(notification, digest, check_value):
        raise AuthenticationError("invalid checkValue", field="checkValue")
    return account


def build_record(account: ProviderAccount, notification: dict[str, Any]) -> IngestRecord:
    missing = [name for name in REQUIRED_FIELDS if field_text(notification.get(name)).strip() == ""]
    clean = sanitized(notification)
    payload = orjson.dumps(clean).decode()
    problems = ["missing required fields: " + ", ".join(missing)] if missing else []
    if contains_nul(notification):
        # PostgreSQL's jsonb and text cannot hold one; PAYable's retry of it cannot help.
        problems.append("the notification contains a NUL character (\\u0000), which cannot be stored")
    if problems:
        event_id = "sha256:" + hashlib.sha256(payload.encode()).hexdigest()
    else:
        event_id = ":".join(
            field_text(notification[name])
            for name in ("payableOrderId", "payableTransactionId", "statusCode")
        )
    record = IngestRecord(
        provider=PAYABLE,
        event_id=event_id[:300],
        event_type="payment.success" if is_success(notification) else "payment.failed",
        merchant_id=account.merchant_id,
        provider_account_id=account.id,
        account_id=account.account_id,
        payload=payload,
    )
    if problems:
        return replace(record, status=REJECTED, reason="; ".join(problems))
    return record


async def payable_webhook(request: web.Request) -> web.Response:
    body = await read_webhook_body(request)
    try:
        notification = orjson.loads(body)
    except orjson.JSONDecodeError:
        OUTCOMES.invalid.inc()
        raise BadRequestError("the body is not valid JSON") from None
    if not isinstance(notification, dict):
        OUTCOMES.invalid.inc()
        raise BadRequestError("the body must be a JSON object")
    try:
        account = await verify_check_value(request.app[ACCOUNTS], notification)
    except AuthenticationError:
        OUTCOMES.unauthorized.inc()
        log.info("payable.check_value_mismatch")
        raise
    record = build_record(account, notification)
    await store_and_count(request.app[INGEST_WRITER], record, OUTCOMES)
    return web.Response(body=OK_BODY, content_type="application/json")
