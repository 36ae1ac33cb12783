"""Realistic provider webhook payloads for tests, and how the providers sign them: what the API's
suite posts and the processor's suite stores (`from paystream_devstack.testing import
provider_payloads`).

`razorpay/<event type>.json`: one document per event type, shaped as Razorpay documents them
(entity, account_id, event, contains, payload.<entity>.entity, created_at). The objects are linked
as in life: one payment (`pay_29QQoUBi66xm2f`) is authorized, captured, refunded and disputed.
`payable/{success,failure,tokenization}.json`: PAYable IPG notifications, `checkValue` left empty
for `payable_signed()` to fill in.

The signing here is written independently of the production code, so tests check it rather than
mirror it.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
from pathlib import Path
from typing import Any

import orjson

FOLDER = Path(__file__).resolve().parent
RAZORPAY_EVENT_TYPES = sorted(path.stem for path in (FOLDER / "razorpay").glob("*.json"))


def razorpay(event_type: str, **top_level: Any) -> dict[str, Any]:
    document: dict[str, Any] = orjson.loads((FOLDER / "razorpay" / f"{event_type}.json").read_bytes())
    document.update(top_level)
    return document


def payable(name: str, **fields: Any) -> dict[str, Any]:
    note: dict[str, Any] = orjson.loads((FOLDER / "payable" / f"{name}.json").read_bytes())
    note.update(fields)
    return note


def razorpay_signature(body: bytes, secret: str) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def razorpay_request(
    document: dict[str, Any], secret: str, event_id: str | None
) -> tuple[bytes, dict[str, str]]:
    body = orjson.dumps(document)
    headers = {"Content-Type": "application/json", "X-Razorpay-Signature": razorpay_signature(body, secret)}
    if event_id is not None:
        headers["x-razorpay-event-id"] = event_id
    return body, headers


def payable_check_value(note: dict[str, Any], merchant_token: str) -> str:
    def part(value: Any) -> str:
        return "" if value is None else str(value)

    token_hash = hashlib.sha512(merchant_token.encode()).hexdigest().upper()
    fields = (
        "merchantKey",
        "payableOrderId",
        "payableTransactionId",
        "payableAmount",
        "payableCurrency",
        "invoiceNo",
        "statusCode",
    )
    message = "|".join(part(note.get(name)) for name in fields) + "|" + token_hash
    return hashlib.sha512(message.encode()).hexdigest().upper()


def payable_signed(note: dict[str, Any], merchant_token: str) -> dict[str, Any]:
    signed = copy.deepcopy(note)
    signed["checkValue"] = payable_check_value(signed, merchant_token)
    return signed
