"""`/api/v1/webhook-endpoints[/{id}]`: a merchant's webhook endpoints (at most 20), each with its
event filter, secret, custom headers, rate limit and state; rotation, recovery and a test send.

The default endpoint (`is_default`) is the one `/api/v1/webhooks/config` manages; it is listed and
managed here too.
"""

from __future__ import annotations

from aiohttp import web

from paystream.errors import BadRequestError, NotFoundError
from paystream.logging import get_logger
from paystream.resources import format_timestamp
from paystream.web import POOL, json_response
from paystream_api.auth import authenticate
from paystream_api.keys import SETTINGS
from paystream_api.request_body import read_json_object
from paystream_api.webhook_api import endpoint_store, store
from paystream_api.webhook_api.resources import delivery_resource, endpoint_resource
from paystream_api.webhook_api.validation import is_endpoint_id, parse_endpoint_fields, parse_recover_window

log = get_logger(__name__)

BASE = "/api/v1/webhook-endpoints"


def setup_routes(app: web.Application) -> None:
    app.router.add_post(BASE, create_endpoint)
    app.router.add_get(BASE, list_endpoints)
    app.router.add_get(BASE + "/{id}", get_endpoint)
    app.router.add_patch(BASE + "/{id}", update_endpoint)
    app.router.add_delete(BASE + "/{id}", delete_endpoint)
    app.router.add_post(BASE + "/{id}/rotate-secret", rotate_secret)
    app.router.add_post(BASE + "/{id}/recover", recover)
    app.router.add_post(BASE + "/{id}/test", send_test)


def _endpoint_id(request: web.Request) -> str:
    endpoint_id = request.match_info["id"]
    if not is_endpoint_id(endpoint_id):  # nothing else can name one: no query for it
        raise NotFoundError("no such webhook endpoint", field="id")
    return endpoint_id


def _not_found() -> NotFoundError:
    return NotFoundError("no such webhook endpoint", field="id")


def _disabled() -> BadRequestError:
    return BadRequestError(
        "the webhook endpoint is disabled; enable it first", code="WEBHOOK_ENDPOINT_DISABLED"
    )


async def create_endpoint(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    body = (await read_json_object(request)).fields
    policy = request.app[SETTINGS].common.outbound.policy
    fields = await parse_endpoint_fields(body, policy=policy, partial=False)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        row = await endpoint_store.create(conn, merchant.id, fields)
        secret, expires = await endpoint_store.secrets_of(conn, row)
    log.info("webhook.endpoint_created", merchant_id=merchant.id, endpoint_id=row["id"])
    return json_response(endpoint_resource(row, secret, expires), status=201)


async def list_endpoints(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    rows = await endpoint_store.list_endpoints(request.app[POOL], merchant.id)
    return json_response({"data": [endpoint_resource(row, None, None) for row in rows], "total": len(rows)})


async def get_endpoint(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    endpoint_id = _endpoint_id(request)
    async with request.app[POOL].acquire() as conn:
        row = await endpoint_store.fetch(conn, merchant.id, endpoint_id)
        if row is None:
            raise _not_found()
        secret, expires = await endpoint_store.secrets_of(conn, row)
    return json_response(endpoint_resource(row, secret, expires))


async def update_endpoint(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    endpoint_id = _endpoint_id(request)
    body = (await read_json_object(request)).fields
    policy = request.app[SETTINGS].common.outbound.policy
    fields = await parse_endpoint_fields(body, policy=policy, partial=True)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await endpoint_store.fetch(conn, merchant.id, endpoint_id, for_update=True)
        if found is None:
            raise _not_found()
        row = await endpoint_store.update(conn, found, fields)
        secret, expires = await endpoint_store.secrets_of(conn, row)
    log.info(
        "webhook.endpoint_updated", merchant_id=merchant.id, endpoint_id=endpoint_id, fields=sorted(fields)
    )
    return json_response(endpoint_resource(row, secret, expires))


async def delete_endpoint(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    endpoint_id = _endpoint_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await endpoint_store.fetch(conn, merchant.id, endpoint_id, for_update=True)
        if found is None:
            raise _not_found()
        await endpoint_store.delete(conn, found)
    log.info("webhook.endpoint_deleted", merchant_id=merchant.id, endpoint_id=endpoint_id)
    return json_response({"id": endpoint_id, "deleted": True})


async def rotate_secret(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    endpoint_id = _endpoint_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await endpoint_store.fetch(conn, merchant.id, endpoint_id, for_update=True)
        if found is None:
            raise _not_found()
        row = await endpoint_store.rotate_secret(conn, found)
        secret, expires = await endpoint_store.secrets_of(conn, row)
    log.info("webhook.secret_rotated", merchant_id=merchant.id, endpoint_id=endpoint_id)
    return json_response(endpoint_resource(row, secret, expires))


async def recover(request: web.Request) -> web.Response:
    """Re-send every failed delivery of the endpoint created in `[since, until)`, paced, with the
    same `webhook-id`s (202: the dispatchers send them)."""
    merchant = await authenticate(request)
    endpoint_id = _endpoint_id(request)
    window = parse_recover_window((await read_json_object(request)).fields)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await endpoint_store.fetch(conn, merchant.id, endpoint_id, for_update=True)
        if found is None:
            raise _not_found()
        if not found["enabled"]:
            raise _disabled()
        recovered, pace = await endpoint_store.recover(conn, found, window)
    log.info(
        "webhook.endpoint_recovering", merchant_id=merchant.id, endpoint_id=endpoint_id, deliveries=recovered
    )
    return json_response(
        {
            "endpoint_id": endpoint_id,
            "since": format_timestamp(window.since),
            "until": None if window.until is None else format_timestamp(window.until),
            "recovering": recovered,
            "pace_per_s": pace,
        },
        status=202,
    )


async def send_test(request: web.Request) -> web.Response:
    """Send a `webhook.test` event to this endpoint now; the answer is its delivery log."""
    merchant = await authenticate(request)
    endpoint_id = _endpoint_id(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        found = await endpoint_store.fetch(conn, merchant.id, endpoint_id)
        if found is None:
            raise _not_found()
        if not found["enabled"]:
            raise _disabled()
        row = await store.create_test_delivery(conn, merchant.id, endpoint_id)
    return json_response(delivery_resource(row), status=202)
