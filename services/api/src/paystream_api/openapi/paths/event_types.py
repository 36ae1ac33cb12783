"""The webhook event catalogue's route (`paystream.catalogue`), public. Each event's own schema is
`EventDescription.schema()`, served inside the answer; the document describes the answer's shape."""

from __future__ import annotations

from paystream.catalogue import EVENT_CATALOGUE
from paystream_api.openapi.builders import JsonObject, Paths, json_body, operation, schema_ref
from paystream_api.openapi.components import NO_SECURITY

TAGS = ["Webhooks"]

SCHEMAS: dict[str, JsonObject] = {
    "EventType": {
        "type": "object",
        "required": ["entity", "name", "description", "schema", "sample"],
        "properties": {
            "entity": {"const": "event_type"},
            "name": {"type": "string", "enum": [event_type.value for event_type in EVENT_CATALOGUE]},
            "description": {"type": "string", "description": "One line"},
            "schema": {
                "type": "object",
                "description": "The JSON Schema (draft 2020-12) of the event's `data`",
            },
            "sample": {
                "type": "object",
                "description": "A whole webhook body, as the dispatcher sends it",
                "required": ["event", "timestamp", "data"],
                "properties": {
                    "event": {"type": "string"},
                    "timestamp": {"type": "integer"},
                    "data": {"type": "object"},
                },
            },
        },
    },
    "EventTypeList": {
        "type": "object",
        "required": ["entity", "count", "data"],
        "properties": {
            "entity": {"const": "collection"},
            "count": {"type": "integer", "minimum": 0},
            "data": {"type": "array", "items": schema_ref("EventType")},
        },
    },
}

PATHS: Paths = {
    "/api/v1/event-types": {
        "get": operation(
            "listEventTypes",
            "Every event a webhook can carry, with its data's JSON Schema and a sample body",
            tags=TAGS,
            description="Needs no credentials: it describes the platform, not a merchant.",
            security=NO_SECURITY,
            responses={"200": json_body(schema_ref("EventTypeList"), "The event catalogue")},
        )
    },
}
