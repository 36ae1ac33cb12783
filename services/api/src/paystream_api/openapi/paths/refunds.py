"""Refunds: create for a payment, list a payment's, read one."""

from __future__ import annotations

from paystream_api.ids import PAYMENT_PREFIX, REFUND_PREFIX
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
from paystream_api.openapi.components import REPLAYED_HEADERS

TAGS = ["Refunds"]
PAYMENT_ID = path_id("payment_id", PAYMENT_PREFIX, "The payment's id")
NO_SUCH_PAYMENT = error(404, "No such payment (or another merchant's)")

SCHEMAS: dict[str, JsonObject] = {}

PATHS: Paths = {
    "/api/v1/payments/{payment_id}/refunds": {
        "post": operation(
            "createRefund",
            "Refund a successful payment, fully or in part (201, status `pending`)",
            tags=TAGS,
            description="400 `PAYMENT_NOT_REFUNDABLE` unless the payment succeeded; "
            "`REFUND_AMOUNT_EXCEEDS_REFUNDABLE` past what is left, even under concurrent refunds.",
            parameters=[PAYMENT_ID, parameter("IdempotencyKey"), parameter("CsrfToken")],
            body=request_body(schema_ref("NewRefund")),
            responses={
                "201": json_body(schema_ref("Refund"), "The new refund, pending", headers=REPLAYED_HEADERS),
                **errors(*MERCHANT_WRITE_ERRORS, 409),
                "404": NO_SUCH_PAYMENT,
            },
        ),
        "get": operation(
            "listPaymentRefunds",
            "A payment's refunds, newest first",
            tags=TAGS,
            parameters=[PAYMENT_ID, parameter("Limit"), parameter("Offset")],
            responses={
                "200": json_body(schema_ref("RefundCollection"), "A page of refunds"),
                **errors(*MERCHANT_READ_ERRORS, 422),
                "404": NO_SUCH_PAYMENT,
            },
        ),
    },
    "/api/v1/refunds/{refund_id}": {
        "get": operation(
            "getRefund",
            "One of the merchant's refunds",
            tags=TAGS,
            parameters=[path_id("refund_id", REFUND_PREFIX, "The refund's id")],
            responses={
                "200": json_body(schema_ref("Refund"), "The refund"),
                **errors(*MERCHANT_READ_ERRORS),
                "404": error(404, "No such refund (or another merchant's)"),
            },
        )
    },
}
