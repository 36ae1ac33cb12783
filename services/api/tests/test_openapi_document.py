"""The OpenAPI document is valid OpenAPI 3.1, is served without credentials, and documents exactly
the routes the app serves (a router walk of the real app factory's app)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from openapi_spec_validator import validate

from paystream_api.app import create_app
from paystream_api.openapi.builders import Paths
from paystream_api.openapi.document import build_document, merge_paths, merge_schemas
from paystream_api.seed import TEST_API_KEY, TEST_API_SECRET
from paystream_api.settings import ApiSettings

AUTH = {"X-Api-Key": TEST_API_KEY, "X-Api-Secret": TEST_API_SECRET}

# Routes the app serves that are not part of the API and so not in the document: what browsers
# load, whose contract is the browser tests (tests/browser/) and the dashboard's (test_dashboard_*).
# Add a route here only with the reason; everything else must be documented.
NOT_IN_THE_DOCUMENT = frozenset(
    {
        # HTML pages (text/html, or the sign-in page in their place without a session).
        ("GET", "/checkout"),
        ("GET", "/dashboard"),
        ("GET", "/dashboard/"),
        ("GET", "/dashboard/payments/{payment_id}"),
        ("GET", "/dashboard/webhooks"),
        ("GET", "/dashboard/webhooks/{endpoint_id}"),
        ("GET", "/dashboard/streams"),
        ("GET", "/dashboard/docs"),
        # Static assets: scripts, styles and the Docs page's verification snippets.
        ("GET", "/checkout.js"),
        ("GET", "/static/{path}"),
        ("GET", "/dashboard/snippets/{name}"),
        # The demo shop (TEST_MODE and SEED_TEST_DATA only): its page, and the stand-in for a
        # merchant's backend that creates its orders. Not an API anyone integrates with.
        ("GET", "/demo"),
        ("POST", "/demo/orders"),
    }
)

# Enough settings to build the app: its routes are registered by the factory, before any store
# is opened, so nothing here is connected to.
BUILD_ONLY_ENV = {
    "REDIS_URL": "redis://127.0.0.1:1/0",
    "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
    "JWT_SECRET": "router-walk",
}


def served_routes(app: web.Application) -> set[tuple[str, str]]:
    """(method, path template) of every route; a HEAD that aiohttp adds beside each GET is implied
    by the GET (the document does not list it), any other HEAD would be a route of its own."""
    routes = {(route.method, route.resource.canonical) for route in app.router.routes() if route.resource}
    return {(method, path) for method, path in routes if method != "HEAD" or ("GET", path) not in routes}


def documented_routes(document: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, operations in document["paths"].items() for method in operations}


def route_differences(app: web.Application, document: dict[str, Any]) -> list[str]:
    """What the document lacks and what it has that the app does not serve, one line each."""
    served = served_routes(app) - NOT_IN_THE_DOCUMENT
    documented = documented_routes(document)
    missing = [f"served but not documented: {method} {path}" for method, path in sorted(served - documented)]
    extra = [f"documented but not served: {method} {path}" for method, path in sorted(documented - served)]
    stale = [
        f"excluded but not served: {method} {path}"
        for method, path in sorted(NOT_IN_THE_DOCUMENT - served_routes(app))
    ]
    return missing + extra + stale


def build_app() -> web.Application:
    return create_app(ApiSettings.from_env(BUILD_ONLY_ENV))


def test_the_document_is_valid_openapi_3_1() -> None:
    document = build_document()
    assert document["openapi"].startswith("3.1.")
    validate(document)  # raises, naming the invalid part


def test_every_route_the_app_serves_is_documented_and_nothing_else() -> None:
    differences = route_differences(build_app(), build_document())
    assert not differences, "the OpenAPI document and app.router disagree:\n" + "\n".join(differences)


def test_the_router_walk_names_an_undocumented_route_and_a_stale_path() -> None:
    app = build_app()

    async def handler(_request: web.Request) -> web.Response:
        return web.Response()

    app.router.add_post("/api/v1/undocumented/{thing_id}", handler)
    document = build_document()
    document["paths"] = {**document["paths"], "/api/v1/gone": {"get": {"responses": {}}}}
    assert route_differences(app, document) == [
        "served but not documented: POST /api/v1/undocumented/{thing_id}",
        "documented but not served: GET /api/v1/gone",
    ]


def test_a_path_documented_twice_is_refused() -> None:
    operation = {"responses": {"200": {"description": "ok"}}}
    with pytest.raises(ValueError, match="GET /a is documented twice"):
        merge_paths([{"/a": {"get": operation}}, {"/a": {"get": operation}}])


def test_a_schema_defined_twice_is_refused() -> None:
    class Group:
        PATHS: Paths = {}
        SCHEMAS: dict[str, Any] = {"Order": {"type": "object"}}

    with pytest.raises(ValueError, match="the schema Order is defined twice"):
        merge_schemas({"Order": {"type": "object"}}, [Group])


def _query_bounds(document: dict[str, Any], path: str) -> dict[str, int]:
    """The documented maximum of each integer query parameter of GET `path`."""
    components = document["components"]["parameters"]
    bounds = {}
    for parameter in document["paths"][path]["get"]["parameters"]:
        if "$ref" in parameter:
            parameter = components[parameter["$ref"].rsplit("/", 1)[1]]
        if parameter["in"] == "query" and parameter["schema"].get("type") == "integer":
            bounds[parameter["name"]] = parameter["schema"]["maximum"]
    return bounds


@pytest.mark.parametrize(
    "path", ["/api/v1/payments", "/api/v1/webhooks"], ids=["payments", "webhook-deliveries"]
)
async def test_documented_query_bounds_are_the_enforced_ones(
    validating_api: TestClient[Any, Any], path: str
) -> None:
    """Regression: the delivery log's `offset` was documented with the payments' maximum (10^6)
    while the API takes up to 10^7; and an empty value, which the input layer reads as none, was
    documented as invalid."""
    bounds = _query_bounds(build_document(), path)
    assert set(bounds) == {"limit", "offset"}
    for name, maximum in bounds.items():
        at_bound = await validating_api.get(path, params={name: str(maximum)}, headers=AUTH)
        assert at_bound.status == 200, (name, await at_bound.text())
        past = await validating_api.get(path, params={name: str(maximum + 1)}, headers=AUTH)
        assert past.status == 422
        assert (await past.json())["error"]["field"] == name
        empty = await validating_api.get(path, params={name: ""}, headers=AUTH)
        assert empty.status == 200
    parameters = build_document()["paths"][path]["get"]["parameters"]
    status = next(p for p in parameters if p.get("name") == "status")
    assert status["allowEmptyValue"] is True
    assert (await validating_api.get(path, params={"status": ""}, headers=AUTH)).status == 200


async def test_the_document_is_served_without_credentials(validating_api: TestClient[Any, Any]) -> None:
    response = await validating_api.get("/api/v1/openapi.json")
    assert response.status == 200
    assert response.content_type == "application/json"
    assert orjson.loads(await response.read()) == build_document()
