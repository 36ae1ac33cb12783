"""The document's shared components: security schemes, the error shape, and the parameters and
headers many operations take. The object schemas are in `schemas`.
"""

from __future__ import annotations

from paystream_api.auth import API_KEY_HEADER, API_SECRET_HEADER
from paystream_api.creation import REPLAY_HEADER
from paystream_api.idempotency import HEADER as IDEMPOTENCY_HEADER
from paystream_api.openapi.builders import JsonObject, ref
from paystream_api.payments import LIST_MAX_LIMIT, LIST_MAX_OFFSET
from paystream_api.public_api.access import KEY_PARAMETER
from paystream_api.sessions import CSRF_HEADER, SESSION_COOKIE

SECURITY_SCHEMES: dict[str, JsonObject] = {
    "ApiKey": {
        "type": "apiKey",
        "in": "header",
        "name": API_KEY_HEADER,
        "description": "The merchant's API key (public: checkout pages carry it). Sent with X-Api-Secret.",
    },
    "ApiSecret": {
        "type": "apiKey",
        "in": "header",
        "name": API_SECRET_HEADER,
        "description": "The merchant's API secret (stored as a SHA-256 hash, compared in constant time).",
    },
    "DashboardSession": {
        "type": "apiKey",
        "in": "cookie",
        "name": SESSION_COOKIE,
        "description": "The dashboard's session cookie (POST /dashboard/session), taken when neither "
        "X-Api-Key nor X-Api-Secret is sent. Writes made with it also need `X-CSRF-Token` and a "
        "same-origin `Origin` (else 403 `CSRF_CHECK_FAILED`).",
    },
    "PublicKey": {
        "type": "apiKey",
        "in": "query",
        "name": KEY_PARAMETER,
        "description": "The merchant's public API key, for the endpoints a payer's browser calls.",
    },
}
# Merchant endpoints: key and secret together, or the dashboard session cookie.
MERCHANT_SECURITY: list[dict[str, list[str]]] = [{"ApiKey": [], "ApiSecret": []}, {"DashboardSession": []}]
PUBLIC_SECURITY: list[dict[str, list[str]]] = [{"PublicKey": []}]
NO_SECURITY: list[dict[str, list[str]]] = []

HEADERS: dict[str, JsonObject] = {
    "RetryAfter": {
        "description": "Seconds to wait before retrying",
        "schema": {"type": "string", "pattern": "^[0-9]+$"},
    },
    "IdempotentReplayed": {
        "description": "`true` when the answer is the stored answer of an earlier request with the same "
        "Idempotency-Key and body (nothing new was created)",
        "schema": {"type": "string", "enum": ["true"]},
    },
}

# The input layer reads an empty query value as an absent one (`?status=` is no filter).
EMPTY_IS_ABSENT = "; an empty value is the same as none"


def query_parameter(name: str, schema: JsonObject, description: str = "") -> JsonObject:
    """An optional query parameter."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "allowEmptyValue": True,
        "description": (description or name.capitalize()) + EMPTY_IS_ABSENT,
        "schema": schema,
    }


def limit_parameter(maximum: int) -> JsonObject:
    return query_parameter(
        "limit",
        {"type": "integer", "minimum": 1, "maximum": maximum, "default": 10},
        "Page size (ASCII digits)",
    )


def offset_parameter(maximum: int) -> JsonObject:
    return query_parameter(
        "offset",
        {"type": "integer", "minimum": 0, "maximum": maximum, "default": 0},
        "Objects to skip (ASCII digits)",
    )


PARAMETERS: dict[str, JsonObject] = {
    "IdempotencyKey": {
        "name": IDEMPOTENCY_HEADER,
        "in": "header",
        "required": False,
        "description": "Makes the create safe to retry: the same key with the same body answers the first "
        "answer again (`Idempotent-Replayed: true`); with another body 422 `IDEMPOTENCY_KEY_REUSED`; "
        "while the first request still runs 409 `IDEMPOTENCY_KEY_IN_USE`. Per merchant, kept 24 h.",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
    },
    "Limit": limit_parameter(LIST_MAX_LIMIT),
    "Offset": offset_parameter(LIST_MAX_OFFSET),
    "CsrfToken": {
        "name": CSRF_HEADER,
        "in": "header",
        "required": False,
        "description": "Only for writes made with the dashboard session cookie: the session's CSRF "
        "token (`csrf_token` of GET /dashboard/session)",
        "schema": {"type": "string"},
    },
}

ERROR: JsonObject = {
    "type": "object",
    "description": "Every error answer: a code, a description that never repeats the submitted value, "
    "and the field (a body field such as `amount` or `card.number`, a header, a query parameter) "
    "when one is to blame.",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "description", "field"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string", "example": "VALIDATION_ERROR"},
                "description": {"type": "string", "example": "amount must be at least 1"},
                "field": {"type": ["string", "null"], "example": "amount"},
                "request_id": {"type": "string", "description": "Only on 500: the id to quote"},
            },
        }
    },
}

# On a create's 201: set when the answer is a replay.
REPLAYED_HEADERS: dict[str, JsonObject] = {REPLAY_HEADER: ref("headers", "IdempotentReplayed")}
