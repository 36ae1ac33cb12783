"""`/dashboard/session`: sign in (POST), what the signed-in page needs (GET), sign out (DELETE).

Sign-in takes the API key and secret once, checks them as the API does, and answers a session
cookie (`paystream_api.sessions`). Past `DASHBOARD_SIGNIN_FAILURES_PER_IP` failed sign-ins a minute
from one address, every sign-in from it is answered 429 with `Retry-After` until the minute is up.

GET answers `{"signed_in": false}` without a live session (never a 401: the sign-in page asks it
first), else the merchant, the CSRF token for writes, and a fresh notifier token (15 minutes,
merchant scope) that the page fetches again before it expires.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from aiohttp import web

from paystream.errors import ValidationError
from paystream.inputs import is_token
from paystream.logging import get_logger
from paystream.notifier_tokens import BROWSER_TOKEN_TTL_S, mint_notifier_token
from paystream.ratelimit import RateLimitedError
from paystream.resources import format_timestamp
from paystream.web import POOL, json_response
from paystream_api import sessions
from paystream_api.auth import MAX_CREDENTIAL_LENGTH, client_address, merchant_from_row, verify_credentials
from paystream_api.keys import SETTINGS, SIGNIN_THROTTLE
from paystream_api.request_body import read_json_object
from paystream_api.validation import reject_unknown

log = get_logger(__name__)

SIGNIN_FIELDS = frozenset({"key", "secret"})
NO_STORE = {"Cache-Control": "no-store"}


def _credential(fields: dict[str, Any], name: str) -> str:
    value = fields.get(name)
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(f"{name} is required", field=name)
    value = value.strip()
    if not is_token(value, MAX_CREDENTIAL_LENGTH):
        raise ValidationError(
            f"{name} must be 1 to {MAX_CREDENTIAL_LENGTH} printable ASCII characters without spaces",
            field=name,
        )
    return value


def session_body(request: web.Request, session: asyncpg.Record | None, token: str) -> dict[str, Any]:
    """What a signed-in page needs; `session` is the live session row (merchant columns included)."""
    if session is None:
        return {"signed_in": False}
    settings = request.app[SETTINGS]
    merchant = merchant_from_row(session)
    issued_at = time.time()
    notifier_token = mint_notifier_token(
        settings.jwt_secret, merchant_id=merchant.id, subject=session["session_id"], now=issued_at
    )
    return {
        "signed_in": True,
        "test_mode": settings.common.test_mode.enabled,
        "merchant": merchant.to_resource(),
        "csrf_token": sessions.csrf_token(token),
        "session": {"id": session["session_id"], "expires_at": format_timestamp(session["expires_at"])},
        "notifier": {
            "url": settings.notifier_public_url,
            "token": notifier_token,
            "expires_in_s": BROWSER_TOKEN_TTL_S,
        },
    }


async def sign_in(request: web.Request) -> web.Response:
    sessions.check_origin(request)  # no signing a victim's browser in to an attacker's account
    budget = request.app[SIGNIN_THROTTLE]
    address = client_address(request)
    wait = budget.retry_after(address)
    if wait is not None:
        raise RateLimitedError("too many failed sign-ins from this address; retry later", retry_after_s=wait)
    fields = (await read_json_object(request)).fields
    reject_unknown(fields, SIGNIN_FIELDS)
    api_key, api_secret = _credential(fields, "key"), _credential(fields, "secret")
    merchant = await verify_credentials(request, api_key, api_secret, address_budget=budget)
    settings = request.app[SETTINGS]
    pool = request.app[POOL]
    async with pool.acquire() as conn, conn.transaction():
        new = await sessions.create_session(
            conn,
            merchant.id,
            ttl_s=settings.dashboard_session_ttl_s,
            client_address=address,
            user_agent=sessions.client_user_agent(request),
        )
    log.info("dashboard.signed_in", merchant_id=merchant.id, session_id=new.id)
    session = await sessions.live_session(pool, new.token, idle_s=settings.dashboard_session_idle_s)
    response = json_response(session_body(request, session, new.token), headers=NO_STORE)
    sessions.set_session_cookie(response, request, new.token, settings.dashboard_session_ttl_s)
    return response


async def session_info(request: web.Request) -> web.Response:
    token = sessions.session_token(request)
    session = None
    if token is not None:
        idle_s = request.app[SETTINGS].dashboard_session_idle_s
        session = await sessions.live_session(request.app[POOL], token, idle_s=idle_s)
    response = json_response(session_body(request, session, token or ""), headers=NO_STORE)
    if session is None and sessions.SESSION_COOKIE in request.cookies:
        sessions.clear_session_cookie(response, request)
    return response


async def sign_out(request: web.Request) -> web.Response:
    """Revoke the session (the cookie stops working everywhere at once) and clear the cookie."""
    token = sessions.session_token(request)
    if token is not None:
        sessions.check_csrf(request, token)
        if await sessions.revoke_session(request.app[POOL], token):
            log.info("dashboard.signed_out")
    response = web.Response(status=204, headers=NO_STORE)
    sessions.clear_session_cookie(response, request)
    return response


def setup_routes(app: web.Application) -> None:
    app.router.add_post("/dashboard/session", sign_in)
    app.router.add_get("/dashboard/session", session_info)
    app.router.add_delete("/dashboard/session", sign_out)
