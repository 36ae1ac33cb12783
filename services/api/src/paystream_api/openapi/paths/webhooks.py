"""Merchant webhooks: the endpoint configuration, its signing secret, delivery logs, test and retry."""

from __future__ import annotations

from paystream.webhooks import DELIVERY_ID_PREFIX
from paystream_api.openapi.builders import (
    MERCHANT_ACTION_ERRORS,
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
from paystream_api.openapi.components import limit_parameter, offset_parameter, query_parameter
from paystream_api.webhook_api.validation import DELIVERY_STATUSES, MAX_EVENT_LENGTH, MAX_LIMIT, MAX_OFFSET

TAGS = ["Webhooks"]
CONFIG = json_body(schema_ref("WebhookConfig"), "The webhook configuration, with the current secret")
DISABLED = "The endpoint is disabled (`WEBHOOK_ENDPOINT_DISABLED`), or a malformed credential header"

SCHEMAS: dict[str, JsonObject] = {}

PATHS: Paths = {
    "/api/v1/webhooks/config": {
        "get": operation(
            "getWebhookConfig",
            "The webhook endpoint, its events and the signing secret",
            tags=TAGS,
            responses={"200": CONFIG, **errors(*MERCHANT_READ_ERRORS)},
        ),
        "put": operation(
            "putWebhookConfig",
            "Create or replace the webhook endpoint",
            tags=TAGS,
            description="Disabling the endpoint fails the deliveries still waiting.",
            parameters=[parameter("CsrfToken")],
            body=request_body(schema_ref("WebhookConfigInput")),
            responses={"200": CONFIG, **errors(*MERCHANT_WRITE_ERRORS)},
        ),
    },
    "/api/v1/webhooks/config/rotate-secret": {
        "post": operation(
            "rotateWebhookSecret",
            "A new signing secret; the old one keeps signing for 24 h",
            tags=TAGS,
            parameters=[parameter("CsrfToken")],
            responses={"200": CONFIG, **errors(*MERCHANT_ACTION_ERRORS)},
        )
    },
    "/api/v1/webhooks/test": {
        "post": operation(
            "sendTestWebhook",
            "Send a `webhook.test` event to the endpoint now",
            tags=TAGS,
            parameters=[parameter("CsrfToken")],
            responses={
                "202": json_body(schema_ref("WebhookDelivery"), "The test delivery, due now"),
                **errors(*MERCHANT_ACTION_ERRORS),
                "400": error(
                    400,
                    "No endpoint is configured (`WEBHOOK_NOT_CONFIGURED`) or it is disabled "
                    "(`WEBHOOK_ENDPOINT_DISABLED`), or a malformed credential header",
                ),
            },
        )
    },
    "/api/v1/webhooks": {
        "get": operation(
            "listWebhookDeliveries",
            "Delivery logs, newest first",
            tags=TAGS,
            parameters=[
                limit_parameter(MAX_LIMIT),
                offset_parameter(MAX_OFFSET),
                query_parameter("status", {"type": "string", "enum": list(DELIVERY_STATUSES)}),
                query_parameter("event", {"type": "string", "maxLength": MAX_EVENT_LENGTH}, "An event type"),
                query_parameter(
                    "endpoint_id", {"type": "string", "maxLength": 100}, "One endpoint's log (`we_...`)"
                ),
            ],
            responses={
                "200": json_body(schema_ref("WebhookDeliveryList"), "A page of deliveries"),
                **errors(*MERCHANT_READ_ERRORS, 422),
            },
        )
    },
    "/api/v1/webhooks/{id}/retry": {
        "post": operation(
            "retryWebhookDelivery",
            "An immediate extra attempt of one delivery, whatever its status",
            tags=TAGS,
            parameters=[
                path_id("id", DELIVERY_ID_PREFIX, "The delivery's id", rest="32 hex digits"),
                parameter("CsrfToken"),
            ],
            responses={
                "202": json_body(schema_ref("WebhookDelivery"), "The delivery, due now"),
                **errors(*MERCHANT_ACTION_ERRORS),
                "400": error(400, DISABLED),
                "404": error(404, "No such delivery (or another merchant's)"),
                "409": error(
                    409, "An attempt of this delivery is in progress (`WEBHOOK_ATTEMPT_IN_PROGRESS`)"
                ),
            },
        )
    },
}
