"""`/health`, `/metrics` and the document itself."""

from __future__ import annotations

from paystream_api.openapi.builders import JsonObject, Paths, json_body, obj, operation, schema_ref
from paystream_api.openapi.components import NO_SECURITY

TAGS = ["Operations"]

TASK_STATUS: JsonObject = obj(
    {
        "state": {"type": "string"},
        "restarts": {"type": "integer", "minimum": 0},
        "last_error": {"type": "string"},
        "down_for_s": {"type": "number"},
    },
    optional=("last_error", "down_for_s"),
)
HEALTH: JsonObject = obj(
    {
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "service": {"type": "string", "example": "api"},
        "database": {"type": "string", "enum": ["ok", "down"]},
        "redis": {"type": "string", "enum": ["ok", "down"]},
        "background": {"type": "object", "additionalProperties": schema_ref("BackgroundTask")},
    },
    optional=("background",),
)

SCHEMAS: dict[str, JsonObject] = {
    "BackgroundTask": TASK_STATUS,
    "Health": HEALTH,
}

PATHS: Paths = {
    "/health": {
        "get": operation(
            "getHealth",
            "The state of PostgreSQL, Redis and the background tasks",
            tags=TAGS,
            security=NO_SECURITY,
            responses={
                "200": json_body(schema_ref("Health"), "Healthy"),
                "503": json_body(
                    schema_ref("Health"),
                    "Degraded: a store is down or a background task is waiting to be restarted",
                ),
            },
        )
    },
    "/metrics": {
        "get": operation(
            "getMetrics",
            "Prometheus metrics (stream lag, dead letters and outbox backlog are read at scrape time)",
            tags=TAGS,
            security=NO_SECURITY,
            responses={
                "200": {
                    "description": "The Prometheus text exposition format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        )
    },
    "/api/v1/openapi.json": {
        "get": operation(
            "getOpenApiDocument",
            "This document: the merchant and public API in OpenAPI 3.1",
            tags=TAGS,
            security=NO_SECURITY,
            responses={"200": json_body({"type": "object"}, "The OpenAPI document")},
        )
    },
}
