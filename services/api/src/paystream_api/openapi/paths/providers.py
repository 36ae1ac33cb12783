"""Inbound provider webhooks (Razorpay, PAYable IPG): verified on the raw bytes, stored, then 200."""

from __future__ import annotations

from paystream_api.openapi.builders import (
    JsonObject,
    Paths,
    error,
    errors,
    json_body,
    obj,
    operation,
    request_body,
    schema_ref,
)
from paystream_api.openapi.components import NO_SECURITY
from paystream_api.provider_webhooks.razorpay import EVENT_ID_HEADER, MAX_EVENT_ID_LENGTH, SIGNATURE_HEADER

TAGS = ["Provider webhooks"]
STORED = (
    "Answered only once the event is committed; a repeat answers the same and changes nothing. A "
    "verified event that cannot be processed is stored `rejected` with the reason, and answered 200 too."
)
UNAVAILABLE = error(503, "The event could not be stored now; the provider retries")


def _payable(operation_id: str, summary: str) -> JsonObject:
    return operation(
        operation_id,
        summary,
        tags=TAGS,
        description=f"`checkValue` is checked against the account named by `merchantKey`, in constant time. "
        f"Success is read from the signed `statusCode`, never from `statusMessage`. {STORED}",
        security=NO_SECURITY,
        body=request_body(schema_ref("PayableNotification")),
        responses={
            "200": json_body(obj({"Status": {"const": 200}}), "Stored (or a repeat)"),
            "400": error(400, "The body is not JSON, or not a JSON object"),
            "401": error(401, "`merchantKey` or `checkValue` is missing or wrong; nothing is stored"),
            **errors(413),
            "503": UNAVAILABLE,
        },
    )


RAZORPAY_EVENT: JsonObject = {
    "type": "object",
    "description": "A Razorpay webhook event, as Razorpay sends it (the signature covers the raw bytes)",
    "properties": {
        "entity": {"type": "string", "example": "event"},
        "account_id": {"type": "string"},
        "event": {"type": "string", "example": "payment.captured"},
        "contains": {"type": "array", "items": {"type": "string"}},
        "payload": {"type": "object"},
        "created_at": {"type": "integer"},
    },
}
PAYABLE_NOTIFICATION: JsonObject = {
    "type": "object",
    "description": "A PAYable IPG notification; `checkValue` is upper-case hex SHA-512 of "
    "`merchantKey|payableOrderId|payableTransactionId|payableAmount|payableCurrency|invoiceNo|statusCode|` "
    "followed by the upper-case hex SHA-512 of the merchant token",
    "required": ["merchantKey", "checkValue"],
    "properties": {
        "merchantKey": {"type": "string"},
        "payableOrderId": {"type": "string"},
        "payableTransactionId": {"type": "string"},
        "payableAmount": {"type": "string"},
        "payableCurrency": {"type": "string"},
        "invoiceNo": {"type": "string"},
        "statusCode": {"type": ["string", "integer"], "description": "1 means success"},
        "statusMessage": {"type": "string", "description": "Not signed: never read for the outcome"},
        "checkValue": {"type": "string"},
    },
}

SCHEMAS: dict[str, JsonObject] = {
    "RazorpayEvent": RAZORPAY_EVENT,
    "PayableNotification": PAYABLE_NOTIFICATION,
}

PATHS: Paths = {
    "/api/v1/providers/razorpay/webhook": {
        "post": operation(
            "receiveRazorpayWebhook",
            "A Razorpay webhook event",
            tags=TAGS,
            description=f"`{SIGNATURE_HEADER}` is the hex HMAC-SHA256 of the raw body with the account's "
            f"webhook secret, checked before the body is parsed. Events are de-duplicated on "
            f"`{EVENT_ID_HEADER}`. {STORED}",
            security=NO_SECURITY,
            parameters=[
                {
                    "name": SIGNATURE_HEADER,
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                },
                {
                    "name": EVENT_ID_HEADER,
                    "in": "header",
                    "required": False,
                    "description": "Razorpay's event id (not covered by the signature)",
                    "schema": {"type": "string", "maxLength": MAX_EVENT_ID_LENGTH, "pattern": "^[!-~]+$"},
                },
            ],
            body=request_body(schema_ref("RazorpayEvent")),
            responses={
                "200": json_body(obj({"status": {"const": "ok"}}), "Stored (or a repeat)"),
                "400": error(400, f"The body is not JSON, or `{EVENT_ID_HEADER}` is not a plain id"),
                "401": error(401, f"`{SIGNATURE_HEADER}` is missing or wrong; nothing is stored"),
                **errors(413),
                "503": UNAVAILABLE,
            },
        )
    },
    "/api/v1/providers/payable/webhook": {
        "post": _payable("receivePayableWebhook", "A PAYable IPG payment notification"),
    },
    "/api/payments/webhook": {
        "post": _payable(
            "receivePayableWebhookAtLegacyPath",
            "A PAYable IPG payment notification, at the address PAYable's set-up guide uses",
        ),
    },
}
