"""A merchant's webhook endpoints: create, list, read, change, delete; rotate, test, recover."""

from __future__ import annotations

from paystream_api.openapi.builders import (
    MERCHANT_ACTION_ERRORS,
    MERCHANT_READ_ERRORS,
    MERCHANT_WRITE_ERRORS,
    JsonObject,
    Paths,
    error,
    errors,
    json_body,
    nullable,
    obj,
    operation,
    parameter,
    path_id,
    request_body,
    schema_ref,
)
from paystream_api.openapi.schemas import TIMESTAMP, WEBHOOK_EVENTS
from paystream_api.webhook_api.store import MAX_ENDPOINTS
from paystream_api.webhook_api.validation import (
    MAX_DESCRIPTION_LENGTH,
    MAX_HEADER_VALUE_LENGTH,
    MAX_HEADERS,
    MAX_RATE_LIMIT_PER_S,
    MAX_URL_LENGTH,
)

TAGS = ["Webhook endpoints"]
BASE = "/api/v1/webhook-endpoints"
ENDPOINT_ID = path_id("id", "we_", "The endpoint's id", rest="32 hex digits")
NOT_FOUND = error(404, "No such endpoint (or another merchant's, or deleted)")
DISABLED = error(
    400, "The endpoint is disabled (`WEBHOOK_ENDPOINT_DISABLED`), or a malformed credential header"
)

_HEADERS: JsonObject = {
    "type": "object",
    "maxProperties": MAX_HEADERS,
    "additionalProperties": {"type": "string", "minLength": 1, "maxLength": MAX_HEADER_VALUE_LENGTH},
    "description": "Sent with every attempt. Not `webhook-*`, `X-Webhook-*`, `Content-Type`, "
    "`Content-Length`, `Host`, `User-Agent` or a hop-by-hop header; printable ASCII values",
    "example": {"X-Tenant": "salon-7"},
}
_FIELDS: dict[str, JsonObject] = {
    "url": {
        "type": "string",
        "minLength": 1,
        "maxLength": MAX_URL_LENGTH,
        "description": "http(s); every address its host resolves to must be allowed by the outbound policy",
        "example": "https://shop.example.com/webhooks/accounting",
    },
    "description": nullable({"type": "string", "maxLength": MAX_DESCRIPTION_LENGTH}),
    "events": nullable(WEBHOOK_EVENTS),
    "enabled": {"type": "boolean", "default": True},
    "headers": nullable(_HEADERS),
    "rate_limit_per_s": nullable(
        {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_RATE_LIMIT_PER_S,
            "description": "Attempts a second at most; deliveries above it wait (they do not fail)",
        }
    ),
}
_ENDPOINT_PROPERTIES: dict[str, JsonObject] = {
    "id": {"type": "string", "example": "we_0193a8d4c1e27b6f9a0c3d5e7f812345"},
    "url": {"type": "string"},
    "description": {"type": "string"},
    "events": WEBHOOK_EVENTS,
    "enabled": {"type": "boolean"},
    "disabled_reason": {"type": ["string", "null"]},
    "disabled_at": nullable(TIMESTAMP),
    "failing_since": nullable(TIMESTAMP),
    "headers": {"type": "object", "additionalProperties": {"type": "string"}},
    "rate_limit_per_s": {"type": ["integer", "null"]},
    "is_default": {
        "type": "boolean",
        "description": "The endpoint `/api/v1/webhooks/config` manages (signs with the merchant secret)",
    },
    "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP,
}

SCHEMAS: dict[str, JsonObject] = {
    "WebhookEndpointInput": obj(_FIELDS, optional=[name for name in _FIELDS if name != "url"]),
    "WebhookEndpointChanges": {
        **obj(_FIELDS, optional=list(_FIELDS)),
        "minProperties": 1,
        "description": "The fields to change; `null` clears `events` (to all), `headers` and `rate_limit_per_s`",
    },
    "WebhookEndpointSummary": obj(_ENDPOINT_PROPERTIES),
    "WebhookEndpoint": obj(
        {
            **_ENDPOINT_PROPERTIES,
            "secret": {
                "type": "string",
                "description": "The `whsec_` secret that signs this endpoint's deliveries",
            },
            "previous_secret_expires_at": nullable(TIMESTAMP),
        }
    ),
    "WebhookEndpointList": obj(
        {
            "data": {
                "type": "array",
                "items": schema_ref("WebhookEndpointSummary"),
                "maxItems": MAX_ENDPOINTS,
            },
            "total": {"type": "integer", "minimum": 0, "maximum": MAX_ENDPOINTS},
        }
    ),
    "WebhookEndpointDeleted": obj({"id": {"type": "string"}, "deleted": {"type": "boolean", "const": True}}),
    "WebhookRecoverWindow": obj(
        {
            "since": {**TIMESTAMP, "description": "RFC 3339 with an offset; deliveries created from then"},
            "until": nullable({**TIMESTAMP, "description": "Up to (excluded); now when absent"}),
        },
        optional=("until",),
    ),
    "WebhookRecovery": obj(
        {
            "endpoint_id": {"type": "string"},
            "since": TIMESTAMP,
            "until": nullable(TIMESTAMP),
            "recovering": {"type": "integer", "minimum": 0, "description": "Failed deliveries due again"},
            "pace_per_s": {"type": "integer", "minimum": 1},
        }
    ),
}

ENDPOINT = json_body(schema_ref("WebhookEndpoint"), "The endpoint, with its secret")

PATHS: Paths = {
    BASE: {
        "post": operation(
            "createWebhookEndpoint",
            f"A new endpoint with a secret of its own (at most {MAX_ENDPOINTS} per merchant)",
            tags=TAGS,
            parameters=[parameter("CsrfToken")],
            body=request_body(schema_ref("WebhookEndpointInput")),
            responses={
                "201": json_body(schema_ref("WebhookEndpoint"), "The endpoint, with its secret"),
                **errors(*MERCHANT_WRITE_ERRORS),
                "400": error(
                    400,
                    f"Already {MAX_ENDPOINTS} endpoints (`WEBHOOK_ENDPOINT_LIMIT`), a body that is not a "
                    "JSON object, or a malformed credential header",
                ),
            },
        ),
        "get": operation(
            "listWebhookEndpoints",
            "The merchant's endpoints, oldest first (no secrets)",
            tags=TAGS,
            responses={
                "200": json_body(schema_ref("WebhookEndpointList"), "Every endpoint"),
                **errors(*MERCHANT_READ_ERRORS),
            },
        ),
    },
    BASE + "/{id}": {
        "get": operation(
            "getWebhookEndpoint",
            "One endpoint, with its secret",
            tags=TAGS,
            parameters=[ENDPOINT_ID],
            responses={"200": ENDPOINT, **errors(*MERCHANT_READ_ERRORS), "404": NOT_FOUND},
        ),
        "patch": operation(
            "updateWebhookEndpoint",
            "Change an endpoint",
            tags=TAGS,
            description="Disabling fails the deliveries waiting for an attempt; enabling a disabled endpoint "
            "starts afresh (no failure run, no disabled reason).",
            parameters=[ENDPOINT_ID, parameter("CsrfToken")],
            body=request_body(schema_ref("WebhookEndpointChanges")),
            responses={"200": ENDPOINT, **errors(*MERCHANT_WRITE_ERRORS), "404": NOT_FOUND},
        ),
        "delete": operation(
            "deleteWebhookEndpoint",
            "Delete an endpoint: nothing more is sent, waiting deliveries fail, its log stays",
            tags=TAGS,
            parameters=[ENDPOINT_ID, parameter("CsrfToken")],
            responses={
                "200": json_body(schema_ref("WebhookEndpointDeleted"), "Deleted"),
                **errors(*MERCHANT_ACTION_ERRORS),
                "404": NOT_FOUND,
            },
        ),
    },
    BASE + "/{id}/rotate-secret": {
        "post": operation(
            "rotateWebhookEndpointSecret",
            "A new secret for the endpoint; the old one keeps signing for 24 h",
            tags=TAGS,
            parameters=[ENDPOINT_ID, parameter("CsrfToken")],
            responses={"200": ENDPOINT, **errors(*MERCHANT_ACTION_ERRORS), "404": NOT_FOUND},
        )
    },
    BASE + "/{id}/test": {
        "post": operation(
            "sendWebhookEndpointTest",
            "Send a `webhook.test` event to the endpoint now",
            tags=TAGS,
            parameters=[ENDPOINT_ID, parameter("CsrfToken")],
            responses={
                "202": json_body(schema_ref("WebhookDelivery"), "The test delivery, due now"),
                **errors(*MERCHANT_ACTION_ERRORS),
                "400": DISABLED,
                "404": NOT_FOUND,
            },
        )
    },
    BASE + "/{id}/recover": {
        "post": operation(
            "recoverWebhookEndpoint",
            "Re-send every failed delivery of the endpoint created in the window",
            tags=TAGS,
            description="Oldest first and paced (20 a second, or the endpoint's rate limit when lower), with "
            "the same delivery ids, hence the same `webhook-id`s.",
            parameters=[ENDPOINT_ID, parameter("CsrfToken")],
            body=request_body(schema_ref("WebhookRecoverWindow")),
            responses={
                "202": json_body(schema_ref("WebhookRecovery"), "How many deliveries are due again"),
                **errors(*MERCHANT_WRITE_ERRORS),
                "400": DISABLED,
                "404": NOT_FOUND,
            },
        )
    },
}
