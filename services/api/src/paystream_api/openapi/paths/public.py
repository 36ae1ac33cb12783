"""The public checkout endpoints: what a payer's browser may call with only the public key."""

from __future__ import annotations

from paystream_api.ids import ORDER_PREFIX, PAYMENT_PREFIX
from paystream_api.openapi.builders import (
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
from paystream_api.openapi.components import PUBLIC_SECURITY, REPLAYED_HEADERS

TAGS = ["Checkout (public)"]
NO_STORE: dict[str, JsonObject] = {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}}
UNAUTHORIZED = error(401, "The `key` query parameter is missing or names no merchant")
BAD_KEY = error(422, "The key holds control characters or is too long, or a field failed validation")
THROTTLED = error(429, "Too many checkout requests from this address or for this key")
DESCRIPTION = (
    "Rate-limited per client address and per key (`PUBLIC_READS_PER_IP`, `PUBLIC_READS_PER_KEY`; "
    "payments: `PUBLIC_PAYMENTS_PER_IP`, `PUBLIC_PAYMENTS_PER_KEY`; a minute, per API process)."
)

SCHEMAS: dict[str, JsonObject] = {}

PATHS: Paths = {
    "/api/v1/public/orders/{order_id}": {
        "get": operation(
            "getCheckoutOrder",
            "The order as the hosted checkout shows it, with a notifier token for it alone",
            tags=TAGS,
            description=DESCRIPTION,
            security=PUBLIC_SECURITY,
            parameters=[path_id("order_id", ORDER_PREFIX, "The order's id")],
            responses={
                "200": json_body(schema_ref("CheckoutOrder"), "The order", headers=NO_STORE),
                "401": UNAUTHORIZED,
                "404": error(404, "No such order of the key's merchant"),
                "422": BAD_KEY,
                "429": THROTTLED,
                **errors(503),
            },
        )
    },
    "/api/v1/public/payments": {
        "post": operation(
            "createCheckoutPayment",
            "Pay an unpaid order of the key's merchant (201, status `pending`)",
            tags=TAGS,
            description="The merchant API's payment request, where `amount` and `currency` may be left "
            "out (the order's; when sent they must match it). A payer's idempotency keys live apart from "
            f"the merchant's own. {DESCRIPTION}",
            security=PUBLIC_SECURITY,
            parameters=[parameter("IdempotencyKey")],
            body=request_body(schema_ref("NewCheckoutPayment")),
            responses={
                "201": json_body(
                    schema_ref("CheckoutPaymentCreated"),
                    "The new payment and a fresh notifier grant",
                    headers={**NO_STORE, **REPLAYED_HEADERS},
                ),
                **errors(400, 409, 413, 503),
                "401": UNAUTHORIZED,
                "404": error(404, "`order_id` names no order of the key's merchant"),
                "422": BAD_KEY,
                "429": THROTTLED,
            },
        )
    },
    "/api/v1/public/payments/{payment_id}": {
        "get": operation(
            "getCheckoutPayment",
            "A checkout payment's status (the fallback when the notifier cannot be reached)",
            tags=TAGS,
            description=DESCRIPTION,
            security=PUBLIC_SECURITY,
            parameters=[path_id("payment_id", PAYMENT_PREFIX, "The payment's id")],
            responses={
                "200": json_body(schema_ref("CheckoutPayment"), "The payment", headers=NO_STORE),
                "401": UNAUTHORIZED,
                "404": error(404, "No such payment for an order of the key's merchant"),
                "422": BAD_KEY,
                "429": THROTTLED,
                **errors(503),
            },
        )
    },
}
