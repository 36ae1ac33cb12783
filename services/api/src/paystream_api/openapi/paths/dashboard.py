"""The dashboard's own endpoints: its session (sign in, what the page needs, sign out) and the
figures its pages show that the merchant API lacks."""

from __future__ import annotations

from paystream_api.auth import MAX_CREDENTIAL_LENGTH
from paystream_api.openapi.builders import (
    MERCHANT_READ_ERRORS,
    JsonObject,
    Paths,
    error,
    errors,
    json_body,
    obj,
    operation,
    parameter,
    request_body,
    schema_ref,
)
from paystream_api.openapi.schemas import TIMESTAMP
from paystream_api.sessions import SESSION_COOKIE

TAGS = ["Dashboard"]
ORIGIN: JsonObject = {
    "name": "Origin",
    "in": "header",
    "required": True,
    "description": "This server's own origin (what a browser sends): no signing a victim's browser in, "
    "or out, from another site",
    "schema": {"type": "string"},
}
SESSION: JsonObject = {
    "description": "What a signed-in page needs, or `signed_in: false`",
    "headers": {
        "Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}},
    },
    "content": {"application/json": {"schema": schema_ref("DashboardSession")}},
}
COOKIE_OPTIONAL: list[dict[str, list[str]]] = [{"DashboardSession": []}, {}]

CREDENTIAL: JsonObject = {"type": "string", "minLength": 1, "maxLength": MAX_CREDENTIAL_LENGTH}
SIGN_IN: JsonObject = obj({"key": CREDENTIAL, "secret": CREDENTIAL})

NONNEGATIVE_COUNTS: JsonObject = {"type": "array", "items": {"type": "integer", "minimum": 0}}
RATE: JsonObject = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
PAYMENTS_SUMMARY: JsonObject = obj(
    {
        "totals": obj(
            {
                "count": {"type": "integer", "minimum": 0},
                "succeeded": {"type": "integer", "minimum": 0},
                "failed": {"type": "integer", "minimum": 0},
                "pending": {"type": "integer", "minimum": 0},
                "success_rate": RATE,
                "volume": {
                    "type": "array",
                    "items": obj(
                        {
                            "currency": {"type": "string"},
                            "amount": {"type": "integer", "minimum": 0},
                            "refunded": {"type": "integer", "minimum": 0},
                        }
                    ),
                },
            }
        ),
        "per_minute": obj(
            {
                "start": {"type": "integer", "description": "Unix seconds of the first minute"},
                "step_s": {"type": "integer"},
                "series": obj({status: NONNEGATIVE_COUNTS for status in ("success", "failed", "pending")}),
            }
        ),
    }
)
WEBHOOKS_SUMMARY: JsonObject = obj(
    {
        "event_types": {"type": "array", "items": {"type": "string"}},
        "last_24h": obj(
            {
                "delivered": {"type": "integer", "minimum": 0},
                "failing": {"type": "integer", "minimum": 0},
                "waiting": {"type": "integer", "minimum": 0},
                "success_rate": RATE,
            }
        ),
        "per_bucket": obj(
            {
                "start": {"type": "integer"},
                "step_s": {"type": "integer"},
                "delivered": NONNEGATIVE_COUNTS,
                "failing": NONNEGATIVE_COUNTS,
                "success_rate": {"type": "array", "items": RATE},
            }
        ),
    }
)
UNAVAILABLE: JsonObject = obj({"available": {"const": False}})
STREAMS_STATUS: JsonObject = obj(
    {
        "bus": {
            "oneOf": [
                obj(
                    {
                        "available": {"const": True},
                        "streams": {
                            "type": "array",
                            "items": obj({"stream": {"type": "string"}, "length": {"type": "integer"}}),
                        },
                        "groups": {
                            "type": "array",
                            "items": obj(
                                {
                                    "stream": {"type": "string"},
                                    "group": {"type": "string"},
                                    "lag": {"type": "integer"},
                                    "lag_capped": {"type": "boolean"},
                                    "pending": {"type": "integer"},
                                    "oldest_pending_age_s": {"type": ["number", "null"]},
                                    "consumers": {"type": "integer"},
                                    "live_consumers": {"type": "integer"},
                                }
                            ),
                        },
                        "readers": {
                            "type": "array",
                            "items": obj(
                                {
                                    "stream": {"type": "string"},
                                    "reader": {"type": "string"},
                                    "live": {"type": "boolean"},
                                    "lag": {"type": ["integer", "null"]},
                                    "lag_capped": {"type": "boolean"},
                                    "last_beat_s": {"type": "number"},
                                }
                            ),
                        },
                        "dead_letters": {"type": "object", "additionalProperties": {"type": "integer"}},
                    }
                ),
                UNAVAILABLE,
            ]
        },
        "outbox": {
            "oneOf": [
                obj(
                    {
                        "available": {"const": True},
                        "unpublished": {"type": "integer", "minimum": 0},
                        "capped": {"type": "boolean"},
                        "oldest_age_s": {"type": "number", "minimum": 0},
                    }
                ),
                UNAVAILABLE,
            ]
        },
    }
)
DASHBOARD_SESSION: JsonObject = {
    "oneOf": [
        obj({"signed_in": {"const": False}}),
        obj(
            {
                "signed_in": {"const": True},
                "test_mode": {"type": "boolean"},
                "merchant": schema_ref("Merchant"),
                "csrf_token": {"type": "string", "description": "Send as X-CSRF-Token on writes"},
                "session": obj({"id": {"type": "string"}, "expires_at": TIMESTAMP}),
                "notifier": obj(
                    {
                        "url": {"type": "string"},
                        "token": {"type": "string", "description": "Merchant scope, 15 minutes"},
                        "expires_in_s": {"type": "integer"},
                    }
                ),
            }
        ),
    ]
}

SCHEMAS: dict[str, JsonObject] = {
    "SignIn": SIGN_IN,
    "DashboardSession": DASHBOARD_SESSION,
    "PaymentsSummary": PAYMENTS_SUMMARY,
    "WebhooksSummary": WEBHOOKS_SUMMARY,
    "StreamsStatus": STREAMS_STATUS,
}

PATHS: Paths = {
    "/dashboard/session": {
        "post": operation(
            "signIn",
            "Sign in to the dashboard with the API key and secret; answers the session cookie",
            tags=TAGS,
            description=f"Sets `{SESSION_COOKIE}` (HttpOnly, SameSite=Strict, Secure over https). Past "
            "`DASHBOARD_SIGNIN_FAILURES_PER_IP` failures a minute from one address, 429.",
            security=[],
            parameters=[ORIGIN],
            body=request_body(schema_ref("SignIn")),
            responses={
                "200": {
                    **SESSION,
                    "headers": {
                        **SESSION["headers"],
                        "Set-Cookie": {"description": "The session cookie", "schema": {"type": "string"}},
                    },
                },
                **errors(400, 401, 413, 422, 429, 503),
                "403": error(403, "`Origin` is missing or another site's (`CSRF_CHECK_FAILED`)"),
            },
        ),
        "get": operation(
            "getDashboardSession",
            "The signed-in merchant, the CSRF token and a notifier token; `signed_in: false` otherwise",
            tags=TAGS,
            security=COOKIE_OPTIONAL,
            responses={"200": SESSION, **errors(503)},
        ),
        "delete": operation(
            "signOut",
            "Revoke the session (the cookie stops working everywhere at once) and clear the cookie",
            tags=TAGS,
            security=COOKIE_OPTIONAL,
            parameters=[{**ORIGIN, "required": False}, parameter("CsrfToken")],
            responses={
                "204": {"description": "Signed out"},
                **errors(503),
                "403": error(403, "A session cookie without this origin's `Origin` and its CSRF token"),
            },
        ),
    },
    "/api/v1/dashboard/payments/summary": {
        "get": operation(
            "getPaymentsSummary",
            "Totals and payments per minute over the last hour, by status",
            tags=TAGS,
            responses={
                "200": json_body(schema_ref("PaymentsSummary"), "The figures"),
                **errors(*MERCHANT_READ_ERRORS),
            },
        )
    },
    "/api/v1/dashboard/webhooks/summary": {
        "get": operation(
            "getWebhooksSummary",
            "Delivery success rates (24 h, and per 5 minutes over the last hour) and the event types",
            tags=TAGS,
            responses={
                "200": json_body(schema_ref("WebhooksSummary"), "The figures"),
                **errors(*MERCHANT_READ_ERRORS),
            },
        )
    },
    "/api/v1/dashboard/streams": {
        "get": operation(
            "getStreamsStatus",
            "The event bus as `payctl health` sees it (platform-wide counts, no merchant's data)",
            tags=TAGS,
            description="Redis or PostgreSQL unreachable is part of the answer (`available: false`).",
            responses={
                "200": json_body(schema_ref("StreamsStatus"), "The figures"),
                **errors(*MERCHANT_READ_ERRORS),
            },
        )
    },
}
