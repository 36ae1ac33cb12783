"""Dashboard sessions: a random token in an HttpOnly cookie, its hash in PostgreSQL, CSRF checks.

A merchant signs in to the dashboard with its API key and secret (`frontend.dashboard.signin`);
from then on the browser sends the session cookie, and `paystream_api.auth.authenticate` accepts it
on every merchant endpoint, so the dashboard calls the same `/api/v1` handlers as any API client.

- The cookie is HttpOnly, SameSite=Strict, Path=/, and Secure when the request came over https
  (directly, or through a proxy that says so in `X-Forwarded-Proto`: believing that header can only
  make the cookie stricter). Unlike `X-Forwarded-For` (`paystream_api.auth.client_address`), it is
  believed from any peer, not only from `TRUSTED_PROXIES`: a client that sends it itself gets a
  stricter cookie for its own session and nothing else, while reading it only from trusted proxies
  would drop Secure behind a TLS proxy that nobody listed, the default.
- Only the token's SHA-256 is stored. A session ends at its absolute expiry, after the idle timeout
  without a request, or when it is revoked at sign-out; each is checked on every request.
- Writes made with the cookie (any method but GET, HEAD, OPTIONS) must come from this origin
  (`Origin`) and carry the session's CSRF token in `X-CSRF-Token`. The token is an HMAC of the
  session token, so it needs no storage and a copy of the table yields none. SameSite=Strict already
  keeps the cookie off cross-site requests; these checks hold even where it does not.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg
from aiohttp import web
from yarl import URL

from paystream.db import Connection
from paystream.errors import ApiError
from paystream.inputs import is_text, is_token
from paystream_api.ids import new_id

SESSION_COOKIE = "paystream_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SESSION_PREFIX = "dses_"
TOKEN_BYTES = 32
MAX_TOKEN_LENGTH = 64
# last_seen_at is written at most this often per session: a page polling every few seconds must
# not turn every read into a write.
TOUCH_INTERVAL_S = 60
# Ended sessions are kept this long (the merchant's record of its sign-ins), then deleted at the
# merchant's next sign-in.
ENDED_RETENTION_DAYS = 30
USER_AGENT_MAX_LENGTH = 255

_CSRF_CONTEXT = b"paystream dashboard csrf v1"


class CsrfError(ApiError):
    """403: a write with the session cookie that did not prove it came from the dashboard."""

    status = 403
    code = "CSRF_CHECK_FAILED"


@dataclass(frozen=True, slots=True)
class NewSession:
    id: str
    token: str
    expires_at: datetime


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def csrf_token(token: str) -> str:
    """The CSRF token of the session whose cookie holds `token`."""
    return hmac.new(token.encode(), _CSRF_CONTEXT, hashlib.sha256).hexdigest()


def session_token(request: web.Request) -> str | None:
    """The session token the request's cookie holds; None when there is none or it is malformed (a
    malformed cookie names no session, like a missing one)."""
    value = request.cookies.get(SESSION_COOKIE)
    if value is None or not is_token(value, MAX_TOKEN_LENGTH):
        return None
    return value


def is_https(request: web.Request) -> bool:
    """Whether the session cookie gets Secure (see the module doc: `X-Forwarded-Proto` from anyone)."""
    return request.secure or request.headers.get("X-Forwarded-Proto", "").strip().lower() == "https"


def set_session_cookie(
    response: web.StreamResponse, request: web.Request, token: str, max_age_s: int
) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max_age_s,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def clear_session_cookie(response: web.StreamResponse, request: web.Request) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        "",
        max_age=0,
        expires="Thu, 01 Jan 1970 00:00:00 GMT",
        path="/",
        httponly=True,
        samesite="Strict",
        secure=is_https(request),
    )


def client_user_agent(request: web.Request) -> str | None:
    value = request.headers.get("User-Agent")
    if not value or not is_text(value):
        return None
    return value[:USER_AGENT_MAX_LENGTH]


async def create_session(
    conn: Connection,
    merchant_id: str,
    *,
    ttl_s: int,
    client_address: str,
    user_agent: str | None,
) -> NewSession:
    """A new session for `merchant_id`; the merchant's sessions that ended long ago are deleted."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session_id = new_id(SESSION_PREFIX)
    expires_at = await conn.fetchval(
        """INSERT INTO dashboard_sessions (id, token_hash, merchant_id, expires_at, client_address, user_agent)
           VALUES ($1, $2, $3, now() + make_interval(secs => $4), $5, $6)
           RETURNING expires_at""",
        session_id,
        token_hash(token),
        merchant_id,
        float(ttl_s),
        client_address,
        user_agent,
    )
    await conn.execute(
        """DELETE FROM dashboard_sessions
           WHERE merchant_id = $1
             AND LEAST(expires_at, COALESCE(revoked_at, expires_at)) < now() - make_interval(days => $2)""",
        merchant_id,
        ENDED_RETENTION_DAYS,
    )
    return NewSession(session_id, token, expires_at)


async def live_session(pool: asyncpg.Pool, token: str, *, idle_s: int) -> asyncpg.Record | None:
    """The live session whose cookie holds `token`, with its merchant's columns (`session_id`,
    `expires_at`, `id`, `name`, `email`, `api_key`, `webhook_secret`), its idle clock restarted;
    None when it does not exist, expired, idled out or was revoked."""
    row: asyncpg.Record | None = await pool.fetchrow(
        """WITH live AS (
               SELECT s.id, s.merchant_id, s.expires_at, s.last_seen_at FROM dashboard_sessions s
               WHERE s.token_hash = $1 AND s.revoked_at IS NULL AND s.expires_at > now()
                 AND s.last_seen_at > now() - make_interval(secs => $2)
           ), touched AS (
               UPDATE dashboard_sessions d SET last_seen_at = now() FROM live
               WHERE d.id = live.id AND live.last_seen_at < now() - make_interval(secs => $3)
           )
           SELECT live.id AS session_id, live.expires_at,
                  m.id, m.name, m.email, m.api_key, m.webhook_secret
           FROM live JOIN merchants m ON m.id = live.merchant_id""",
        token_hash(token),
        float(idle_s),
        float(TOUCH_INTERVAL_S),
    )
    return row


async def revoke_session(pool: asyncpg.Pool, token: str) -> bool:
    """End the session whose cookie holds `token`; False when no live session had it."""
    revoked = await pool.fetchval(
        """UPDATE dashboard_sessions SET revoked_at = now()
           WHERE token_hash = $1 AND revoked_at IS NULL RETURNING id""",
        token_hash(token),
    )
    return revoked is not None


def check_origin(request: web.Request) -> None:
    """403 unless the request's `Origin` is this server's own (host and port, as the browser saw
    them: the Host header; a TLS proxy in front changes the scheme, never the authority)."""
    origin = request.headers.get("Origin", "")
    if not origin or not is_token(origin, 2048) or origin == "null":
        raise CsrfError("this request must come from the dashboard (Origin is missing)", field="Origin")
    try:
        offered = URL(origin)
        own = URL.build(scheme=offered.scheme, authority=request.host)
        same = offered.scheme in ("http", "https") and (offered.host, offered.port) == (own.host, own.port)
    except ValueError:
        same = False
    if not same or offered.path not in ("", "/"):
        raise CsrfError("this request must come from the dashboard (Origin is another site)", field="Origin")


def check_csrf(request: web.Request, token: str) -> None:
    """For a write made with the session cookie: same origin, and the session's CSRF token."""
    check_origin(request)
    offered = request.headers.get(CSRF_HEADER, "")
    if not offered or not hmac.compare_digest(offered.encode(errors="replace"), csrf_token(token).encode()):
        raise CsrfError(f"the {CSRF_HEADER} header is missing or wrong", field=CSRF_HEADER)
