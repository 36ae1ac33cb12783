"""`GET`/`PUT /api/v1/webhooks/config` and `POST /api/v1/webhooks/config/rotate-secret`."""

from __future__ import annotations

from aiohttp import web

from paystream.logging import get_logger
from paystream.web import POOL, json_response
from paystream_api.auth import authenticate
from paystream_api.keys import SETTINGS
from paystream_api.request_body import read_json_object
from paystream_api.webhook_api import store
from paystream_api.webhook_api.resources import config_resource
from paystream_api.webhook_api.validation import parse_endpoint_config

log = get_logger(__name__)


async def get_config(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    async with request.app[POOL].acquire() as conn:
        endpoint = await store.fetch_endpoint(conn, merchant.id)
        secret, previous_expires_at = await store.fetch_secrets(conn, merchant.id)
    return json_response(config_resource(secret, endpoint, previous_expires_at))


async def put_config(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    body = (await read_json_object(request)).fields
    policy = request.app[SETTINGS].common.outbound.policy
    config = await parse_endpoint_config(body, policy=policy)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        endpoint = await store.save_endpoint(conn, merchant.id, config)
        secret, previous_expires_at = await store.fetch_secrets(conn, merchant.id)
    log.info("webhook.config_saved", merchant_id=merchant.id, enabled=config.enabled)
    return json_response(config_resource(secret, endpoint, previous_expires_at))


async def rotate_secret(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    async with request.app[POOL].acquire() as conn, conn.transaction():
        await store.rotate_secret(conn, merchant.id)
        endpoint = await store.fetch_endpoint(conn, merchant.id)
        secret, previous_expires_at = await store.fetch_secrets(conn, merchant.id)
    log.info("webhook.secret_rotated", merchant_id=merchant.id)
    return json_response(config_resource(secret, endpoint, previous_expires_at))
