"""The OpenAPI 3.1 document of the merchant and public API, assembled once from the path groups.

To document a new group of routes, add a module under `paths/` that exports `PATHS` and `SCHEMAS`
(the schemas only it uses; build its operations with `builders`; schemas several groups share are
in `schemas`, shared parameters in `components`) and list it in `GROUPS`. The router-walk test (services/api/tests/test_openapi_document.py) fails,
naming the route, until every route the app serves is here.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Protocol

import orjson

from paystream_api.openapi.builders import JsonObject, Paths
from paystream_api.openapi.components import HEADERS, MERCHANT_SECURITY, PARAMETERS, SECURITY_SCHEMES
from paystream_api.openapi.paths import (
    dashboard,
    event_types,
    merchant,
    ops,
    orders,
    payments,
    providers,
    public,
    refunds,
    testing,
    webhook_endpoints,
    webhooks,
)
from paystream_api.openapi.schemas import SCHEMAS


class PathGroup(Protocol):
    """A module of `paths/`."""

    PATHS: Paths
    SCHEMAS: dict[str, JsonObject]


OPENAPI_VERSION = "3.1.0"
API_VERSION = "1"
# In the document's order.
GROUPS: tuple[PathGroup, ...] = (
    merchant,
    orders,
    payments,
    refunds,
    webhooks,
    webhook_endpoints,
    event_types,
    public,
    dashboard,
    providers,
    testing,
    ops,
)

DESCRIPTION = """\
Paystream's merchant REST API, the public checkout API, the dashboard's endpoints, inbound provider
webhooks and the operations endpoints.

Merchant endpoints take `X-Api-Key` and `X-Api-Secret` (or the dashboard's session cookie). Amounts
are integers in minor units (paise). Every error is JSON, `{"error": {"code", "description",
"field"}}`, naming the field to blame; unknown body fields are refused, never ignored. Any request
may also be answered 404 (no such route, as JSON), 405 (a method the route does not take) or 400
(a request line or header that cannot be parsed); an unexpected failure is a 500 naming its
`request_id`, never a stack trace.
"""


def merge_paths(groups: Iterable[Paths]) -> Paths:
    """The groups' paths in one mapping; a (path, method) documented twice is an error."""
    merged: Paths = {}
    for group in groups:
        for path, operations in group.items():
            documented = merged.setdefault(path, {})
            for method, operation in operations.items():
                if method in documented:
                    raise ValueError(f"{method.upper()} {path} is documented twice")
                documented[method] = operation
    return merged


def merge_schemas(shared: dict[str, JsonObject], groups: Iterable[PathGroup]) -> dict[str, JsonObject]:
    """The shared schemas and each group's own; a name defined twice is an error."""
    merged = dict(shared)
    for group in groups:
        for name, schema in group.SCHEMAS.items():
            if name in merged:
                raise ValueError(f"the schema {name} is defined twice")
            merged[name] = schema
    return merged


def build_document() -> JsonObject:
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Paystream API",
            "version": API_VERSION,
            "description": DESCRIPTION,
        },
        "servers": [{"url": "/", "description": "The API's own origin"}],
        "security": MERCHANT_SECURITY,
        "paths": merge_paths(group.PATHS for group in GROUPS),
        "components": {
            "securitySchemes": SECURITY_SCHEMES,
            "schemas": merge_schemas(SCHEMAS, GROUPS),
            "parameters": PARAMETERS,
            "headers": HEADERS,
        },
    }


@cache
def document_bytes() -> bytes:
    """The document as served (built once per process)."""
    return orjson.dumps(build_document())
