"""Running a create request once: with or without an Idempotency-Key, the object, its events and
(with a key) the key and its stored answer commit in one transaction, with one commit, and the
answer goes out only after."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import orjson
from aiohttp import web

from paystream.db import Connection
from paystream.web import POOL
from paystream_api import idempotency
from paystream_api.keys import SETTINGS
from paystream_api.request_body import JsonBody

# Builds the object inside the caller's transaction and returns its representation.
CreateObject = Callable[[Connection], Awaitable[Mapping[str, Any]]]

CREATED = 201
REPLAY_HEADER = "Idempotent-Replayed"


def _json(body: bytes, status: int, *, replayed: bool = False) -> web.Response:
    headers = {REPLAY_HEADER: "true"} if replayed else None
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)


async def create_once(
    request: web.Request, merchant_id: str, body: JsonBody, create: CreateObject, *, key_scope: str = ""
) -> web.Response:
    """Create the object (201), honouring the request's Idempotency-Key if it has one.

    `key_scope` keeps a caller's keys apart from the merchant's own: the public checkout's keys come
    from payers' browsers, and must never claim (or be refused for) a key the merchant's backend
    uses. The scope is joined with a space, which no valid key contains, so no merchant key can
    ever equal a scoped one."""
    pool = request.app[POOL]
    raw_key = request.headers.get(idempotency.HEADER)
    if raw_key is None:
        async with pool.acquire() as conn, conn.transaction():
            created = await create(conn)
        return _json(orjson.dumps(created), CREATED)

    key = idempotency.validate_key(raw_key)
    if key_scope:
        key = f"{key_scope} {key}"
    secret = idempotency.fingerprint_secret(request.app[SETTINGS].jwt_secret)
    request_fingerprint = idempotency.fingerprint(secret, request.method, request.path, body.canonical)
    async with pool.acquire() as conn, conn.transaction():
        outcome = await idempotency.claim(conn, merchant_id, key, request_fingerprint)
        if isinstance(outcome, idempotency.StoredAnswer):
            return _json(outcome.body, outcome.status, replayed=True)
        answer = orjson.dumps(await create(conn))
        await idempotency.complete(conn, outcome, CREATED, answer)
    return _json(answer, CREATED)
