"""`GET /api/v1/merchants/me`."""

from __future__ import annotations

from paystream_api.openapi.builders import (
    MERCHANT_READ_ERRORS,
    JsonObject,
    Paths,
    errors,
    json_body,
    operation,
    schema_ref,
)

SCHEMAS: dict[str, JsonObject] = {}

PATHS: Paths = {
    "/api/v1/merchants/me": {
        "get": operation(
            "getMerchant",
            "The authenticated merchant (never a secret)",
            tags=["Merchant"],
            responses={
                "200": json_body(schema_ref("Merchant"), "The merchant"),
                **errors(*MERCHANT_READ_ERRORS),
            },
        )
    },
}
