"""Orders: `POST /api/v1/orders`, `GET /api/v1/orders/{order_id}`."""

from __future__ import annotations

from paystream_api.ids import ORDER_PREFIX
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

TAGS = ["Orders"]

SCHEMAS: dict[str, JsonObject] = {}

PATHS: Paths = {
    "/api/v1/orders": {
        "post": operation(
            "createOrder",
            "Create an order (status `created`)",
            tags=TAGS,
            description="Unknown fields are refused (422), never ignored. A `return_url` lets the hosted "
            "checkout offer a link back to the merchant's site.",
            parameters=[parameter("IdempotencyKey"), parameter("CsrfToken")],
            body=request_body(schema_ref("NewOrder")),
            responses={
                "201": json_body(schema_ref("Order"), "The new order", headers=REPLAYED_HEADERS),
                **errors(*MERCHANT_WRITE_ERRORS, 409),
            },
        )
    },
    "/api/v1/orders/{order_id}": {
        "get": operation(
            "getOrder",
            "One of the merchant's orders",
            tags=TAGS,
            parameters=[path_id("order_id", ORDER_PREFIX, "The order's id")],
            responses={
                "200": json_body(schema_ref("Order"), "The order"),
                **errors(*MERCHANT_READ_ERRORS),
                "404": error(404, "No such order (or another merchant's)"),
            },
        )
    },
}
