"""Small helpers that write the OpenAPI document's repetitive parts: references, JSON bodies, error
answers and operations. Every path module builds its operations with these, so a new group of
routes reads like the ones already there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

JsonObject = dict[str, Any]
# path -> method (lower case) -> operation object
Paths = dict[str, dict[str, JsonObject]]

JSON = "application/json"

# The reason given for each error status, as a client reads it in the document.
ERROR_REASONS: Mapping[int, str] = {
    400: "Malformed request: the body is not a JSON object, a header is malformed (the field names "
    "it), or a rule on stored state refused it (the code says which)",
    401: "Missing or wrong credentials",
    403: "A write made with the dashboard session cookie failed the CSRF checks (`CSRF_CHECK_FAILED`)",
    404: "No such object (another merchant's objects are never revealed: also 404)",
    409: "The Idempotency-Key is in use by a request still running (`IDEMPOTENCY_KEY_IN_USE`)",
    413: "The body is larger than the endpoint takes",
    422: "A field failed validation (the field is named)",
    429: "Too many requests or failed authentications; retry after `Retry-After` seconds",
    503: "PostgreSQL (or Redis, where the answer needs it) is unavailable; retry after `Retry-After`",
}

# Statuses whose answer carries `Retry-After`.
_RETRY_AFTER_STATUSES = frozenset({429, 503})


def ref(kind: str, name: str) -> JsonObject:
    """`{"$ref": "#/components/<kind>/<name>"}`."""
    return {"$ref": f"#/components/{kind}/{name}"}


def schema_ref(name: str) -> JsonObject:
    return ref("schemas", name)


def nullable(schema: JsonObject) -> JsonObject:
    """`schema` or JSON null (OpenAPI 3.1 spells it as a type list)."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    kind = schema.get("type")
    if isinstance(kind, str):
        nullable_schema = {**schema, "type": [kind, "null"]}
        if "enum" in schema:
            nullable_schema["enum"] = [*schema["enum"], None]
        return nullable_schema
    return {"anyOf": [schema, {"type": "null"}]}


def obj(properties: Mapping[str, JsonObject], *, optional: Iterable[str] = (), **extra: Any) -> JsonObject:
    """A closed object: every property listed is present (unless named in `optional`), no other."""
    optional_names = set(optional)
    return {
        "type": "object",
        "required": [name for name in properties if name not in optional_names],
        "properties": dict(properties),
        "additionalProperties": False,
        **extra,
    }


def json_body(
    schema: JsonObject, description: str, *, headers: Mapping[str, JsonObject] | None = None
) -> JsonObject:
    """A response with a JSON body."""
    response: JsonObject = {"description": description, "content": {JSON: {"schema": schema}}}
    if headers:
        response["headers"] = dict(headers)
    return response


def request_body(schema: JsonObject, *, required: bool = True, description: str | None = None) -> JsonObject:
    body: JsonObject = {"required": required, "content": {JSON: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def error(status: int, reason: str | None = None) -> JsonObject:
    """The JSON error answer for `status` (the shape every error has)."""
    headers = {"Retry-After": ref("headers", "RetryAfter")} if status in _RETRY_AFTER_STATUSES else None
    return json_body(schema_ref("Error"), reason or ERROR_REASONS[status], headers=headers)


def errors(*statuses: int) -> dict[str, JsonObject]:
    return {str(status): error(status) for status in statuses}


def operation(
    operation_id: str,
    summary: str,
    *,
    tags: list[str],
    responses: Mapping[str, JsonObject],
    description: str | None = None,
    parameters: list[JsonObject] | None = None,
    body: JsonObject | None = None,
    security: list[dict[str, list[str]]] | None = None,
) -> JsonObject:
    """One operation; `security=None` keeps the document's default (merchant credentials)."""
    op: JsonObject = {"operationId": operation_id, "summary": summary, "tags": tags}
    if description:
        op["description"] = description
    if parameters:
        op["parameters"] = parameters
    if body is not None:
        op["requestBody"] = body
    op["responses"] = dict(responses)
    if security is not None:
        op["security"] = security
    return op


def path_id(name: str, prefix: str, description: str, *, rest: str = "16 letters or digits") -> JsonObject:
    """A path parameter holding an object id (`prefix` then `rest`); any other value is a 404,
    answered before any query."""
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": f"{description}: `{prefix}` and {rest} (anything else is a 404)",
        "schema": {"type": "string", "minLength": 1, "maxLength": 255},
    }


# What every merchant endpoint may answer besides its own errors: a malformed credential header
# (400), no or wrong credentials (401), the failure throttle (429), PostgreSQL down (503).
MERCHANT_READ_ERRORS = (400, 401, 429, 503)
# Writes that take no body add the CSRF refusal of a cookie write (403).
MERCHANT_ACTION_ERRORS = (400, 401, 403, 429, 503)
# Writes with a JSON body add 413 (over 64 KB) and 422 (a field failed validation).
MERCHANT_WRITE_ERRORS = (400, 401, 403, 413, 422, 429, 503)


def parameter(name: str) -> JsonObject:
    """A parameter of `#/components/parameters`."""
    return ref("parameters", name)
