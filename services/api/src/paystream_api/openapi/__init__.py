"""The API's OpenAPI 3.1 document, served at `GET /api/v1/openapi.json` (no credentials).

`document` assembles it from the path groups under `paths/`; see its docstring to add routes.
"""

from __future__ import annotations

from aiohttp import web

from paystream_api.openapi.document import document_bytes

DOCUMENT_PATH = "/api/v1/openapi.json"


async def get_document(_request: web.Request) -> web.Response:
    return web.Response(body=document_bytes(), content_type="application/json")


def setup_routes(app: web.Application) -> None:
    document_bytes()  # built at start-up: a broken document stops the service, not a request
    app.router.add_get(DOCUMENT_PATH, get_document)
