"""`GET /api/v1/webhooks` (delivery logs), `POST /api/v1/webhooks/{id}/retry` and
`POST /api/v1/webhooks/test`."""

from __future__ import annotations

from aiohttp import web

from paystream.errors import BadRequestError, ConflictError, NotFoundError
from paystream.web import POOL, json_response
from paystream.webhooks import is_delivery_id
from paystream_api.auth import authenticate
from paystream_api.webhook_api import store
from paystream_api.webhook_api.resources import delivery_resource
from paystream_api.webhook_api.validation import parse_log_query


async def list_deliveries(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    query = parse_log_query(request.query)
    rows, total = await store.list_deliveries(request.app[POOL], merchant.id, query)
    return json_response(
        {
            "data": [delivery_resource(row) for row in rows],
            "total": total,
            "limit": query.limit,
            "offset": query.offset,
        }
    )


async def retry_delivery(request: web.Request) -> web.Response:
    """An immediate extra attempt of one delivery (whatever its status), made by a dispatcher."""
    merchant = await authenticate(request)
    delivery_id = request.match_info["id"]
    if not is_delivery_id(delivery_id):  # nothing else can name one: no query for it
        raise NotFoundError("no such webhook delivery", field="id")
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await store.lock_delivery(conn, merchant.id, delivery_id)
        if found is None:
            raise NotFoundError("no such webhook delivery", field="id")
        if found["in_flight"]:
            raise ConflictError(
                "an attempt of this delivery is in progress", code="WEBHOOK_ATTEMPT_IN_PROGRESS"
            )
        if not found["endpoint_enabled"]:
            raise BadRequestError(
                "the delivery's webhook endpoint is disabled or deleted; enable it with "
                f"PATCH /api/v1/webhook-endpoints/{found['endpoint_id']} first",
                code="WEBHOOK_ENDPOINT_DISABLED",
            )
        row = await store.schedule_now(conn, delivery_id)
    return json_response(delivery_resource(row), status=202)


async def send_test(request: web.Request) -> web.Response:
    """Send a `webhook.test` event to the configured URL now; the answer is its delivery log."""
    merchant = await authenticate(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        endpoint = await store.fetch_endpoint(conn, merchant.id)
        if endpoint is None:
            raise BadRequestError(
                "no webhook URL is configured; set one with PUT /api/v1/webhooks/config",
                code="WEBHOOK_NOT_CONFIGURED",
            )
        if not endpoint["enabled"]:
            raise BadRequestError(
                "the webhook endpoint is disabled; enable it with PUT /api/v1/webhooks/config",
                code="WEBHOOK_ENDPOINT_DISABLED",
            )
        row = await store.create_test_delivery(conn, merchant.id, endpoint["id"])
    return json_response(delivery_resource(row), status=202)
