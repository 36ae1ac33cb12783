"""Payments: create, list, read, capture, and a payment's events (the dashboard's timeline)."""

from __future__ import annotations

from paystream.resources import PAYMENT_STATUSES
from paystream_api.ids import PAYMENT_PREFIX
from paystream_api.openapi.builders import (
    MERCHANT_READ_ERRORS,
    MERCHANT_WRITE_ERRORS,
    JsonObject,
    Paths,
    error,
    errors,
    json_body,
    operation,
    parameter,
    path_id,
    request_body,
    schema_ref,
)
from paystream_api.openapi.components import REPLAYED_HEADERS, query_parameter

TAGS = ["Payments"]
PAYMENT_ID = path_id("payment_id", PAYMENT_PREFIX, "The payment's id")
NO_SUCH_PAYMENT = error(404, "No such payment (or another merchant's)")

SCHEMAS: dict[str, JsonObject] = {}

PATHS: Paths = {
    "/api/v1/payments": {
        "post": operation(
            "createPayment",
            "Create a payment: 201 at once with status `pending`; the processor settles it",
            tags=TAGS,
            description="When `order_id` names one of the merchant's orders, the amount (and currency, "
            "if sent) must match it (400 `ORDER_AMOUNT_MISMATCH`, `ORDER_CURRENCY_MISMATCH`) and a paid "
            "order takes no payment (400 `ORDER_ALREADY_PAID`); otherwise `order_id` is the merchant's "
            "own reference. Cards are Luhn-checked and must not have expired; only the network and the "
            "last four digits are stored.",
            parameters=[parameter("IdempotencyKey"), parameter("CsrfToken")],
            body=request_body(schema_ref("NewPayment")),
            responses={
                "201": json_body(schema_ref("Payment"), "The new payment, pending", headers=REPLAYED_HEADERS),
                **errors(*MERCHANT_WRITE_ERRORS, 409),
            },
        ),
        "get": operation(
            "listPayments",
            "The merchant's payments, newest first",
            tags=TAGS,
            parameters=[
                parameter("Limit"),
                parameter("Offset"),
                query_parameter("status", {"type": "string", "enum": list(PAYMENT_STATUSES)}),
            ],
            responses={
                "200": json_body(schema_ref("PaymentCollection"), "A page of payments"),
                **errors(*MERCHANT_READ_ERRORS, 422),
            },
        ),
    },
    "/api/v1/payments/{payment_id}": {
        "get": operation(
            "getPayment",
            "One of the merchant's payments",
            tags=TAGS,
            parameters=[PAYMENT_ID],
            responses={
                "200": json_body(schema_ref("Payment"), "The payment"),
                **errors(*MERCHANT_READ_ERRORS),
                "404": NO_SUCH_PAYMENT,
            },
        )
    },
    "/api/v1/payments/{payment_id}/capture": {
        "post": operation(
            "capturePayment",
            "Capture a successful payment, once",
            tags=TAGS,
            description="400 `PAYMENT_NOT_SUCCESSFUL` unless the payment succeeded, "
            "`PAYMENT_ALREADY_CAPTURED` the second time, `CAPTURE_AMOUNT_MISMATCH` for another amount.",
            parameters=[PAYMENT_ID, parameter("CsrfToken")],
            body=request_body(schema_ref("Capture"), required=False),
            responses={
                "200": json_body(schema_ref("Payment"), "The payment, captured"),
                **errors(*MERCHANT_WRITE_ERRORS),
                "404": NO_SUCH_PAYMENT,
            },
        )
    },
    "/api/v1/payments/{payment_id}/events": {
        "get": operation(
            "listPaymentEvents",
            "The payment's events, oldest first (the dashboard's timeline)",
            tags=TAGS,
            description="The events the platform wrote about the payment and its refunds; past the "
            "outbox's retention, a timeline rebuilt from the records (`source: record`).",
            parameters=[PAYMENT_ID],
            responses={
                "200": json_body(schema_ref("PaymentTimeline"), "The timeline"),
                **errors(*MERCHANT_READ_ERRORS),
                "404": NO_SUCH_PAYMENT,
            },
        )
    },
}
