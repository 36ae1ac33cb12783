"""`GET /api/v1/test/jobs/status`: only with TEST_MODE on."""

from __future__ import annotations

from paystream_api.openapi.builders import JsonObject, Paths, error, json_body, obj, operation, schema_ref
from paystream_api.openapi.components import NO_SECURITY

JOBS_STATUS: JsonObject = obj(
    {
        "pending": {"type": "integer", "minimum": 0},
        "processing": {"type": "integer", "minimum": 0},
        "completed": {"type": "integer", "minimum": 0},
        "failed": {"type": "integer", "minimum": 0},
        "worker_status": {"type": "string", "enum": ["running", "stopped"]},
    }
)

SCHEMAS: dict[str, JsonObject] = {
    "JobsStatus": JOBS_STATUS,
}

PATHS: Paths = {
    "/api/v1/test/jobs/status": {
        "get": operation(
            "getJobsStatus",
            "The payment processor's queue, from the real stream, group and tables (TEST_MODE only)",
            tags=["Testing"],
            description="Served without credentials (its figures are global), and only when TEST_MODE "
            "is on: 404 otherwise, as if absent.",
            security=NO_SECURITY,
            responses={
                "200": json_body(schema_ref("JobsStatus"), "The queue's state"),
                "404": error(404, "TEST_MODE is off"),
                "503": error(503, "PostgreSQL or Redis is unavailable"),
            },
        )
    },
}
