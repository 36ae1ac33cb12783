"""Dashboard sessions: sign-in cookie attributes, server-side revocation and expiry, CSRF refusals,
the sign-in failure budget, and the session cookie on the merchant API's own endpoints."""

from __future__ import annotations

import ssl
import subprocess
import warnings
from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import asyncpg
import jwt
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer
from jwt.warnings import InsecureKeyLengthWarning

from paystream_api.app import create_app
from paystream_api.sessions import token_hash
from paystream_api.settings import ApiSettings
from paystream_devstack.testing.rawhttp import raw_request

KEY = "key_test_abc123"
SECRET = "secret_test_xyz789"
AUTH = {"X-Api-Key": KEY, "X-Api-Secret": SECRET}
SESSION = "/dashboard/session"
JWT_SECRET = "test-jwt-secret"


@pytest.fixture
async def client(service_env: dict[str, str]) -> AsyncIterator[TestClient[Any, Any]]:
    """The API, with no cookie jar: each test sends the cookie it means to send."""
    app = create_app(ApiSettings.from_env(service_env))
    async with TestClient(TestServer(app), cookie_jar=DummyCookieJar()) as test_client:
        yield test_client


def origin_of(client: TestClient[Any, Any]) -> str:
    return str(client.make_url("/").origin())


async def sign_in(client: TestClient[Any, Any], **headers: str) -> tuple[str, dict[str, Any], SimpleCookie]:
    """Sign in as the test merchant: (session token, the answer, the Set-Cookie header parsed)."""
    response = await client.post(
        SESSION, json={"key": KEY, "secret": SECRET}, headers={"Origin": origin_of(client), **headers}
    )
    assert response.status == 200, await response.text()
    cookie: SimpleCookie = SimpleCookie()
    cookie.load(response.headers["Set-Cookie"])
    return cookie["paystream_session"].value, await response.json(), cookie


def with_cookie(token: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"paystream_session={token}", **headers}


async def test_sign_in_answers_an_httponly_samesite_strict_cookie_not_secure_over_http(
    client: TestClient[Any, Any],
) -> None:
    token, body, cookie = await sign_in(client)
    morsel = cookie["paystream_session"]
    assert morsel["httponly"] is True
    assert morsel["samesite"] == "Strict"
    assert morsel["path"] == "/"
    assert not morsel["secure"]
    assert int(morsel["max-age"]) == 12 * 3600
    assert body["signed_in"] is True
    assert body["merchant"]["key"] == KEY
    assert "secret" not in str(body["merchant"])
    assert len(token) >= 43  # 32 random bytes


@pytest.fixture
def tls_context(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a self-signed certificate for 127.0.0.1."""
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
    )
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


async def test_the_cookie_is_secure_when_the_request_came_over_https(
    service_env: dict[str, str], tls_context: ssl.SSLContext
) -> None:
    server = TestServer(create_app(ApiSettings.from_env(service_env)))
    await server.start_server(ssl=tls_context)
    async with TestClient(server, cookie_jar=DummyCookieJar()) as https_client:
        assert https_client.make_url("/").scheme == "https"
        response = await https_client.post(
            SESSION,
            json={"key": KEY, "secret": SECRET},
            headers={"Origin": origin_of(https_client)},
            ssl=False,
        )
        assert response.status == 200
        cookie: SimpleCookie = SimpleCookie()
        cookie.load(response.headers["Set-Cookie"])
        assert cookie["paystream_session"]["secure"] is True


async def test_the_cookie_is_secure_behind_a_tls_proxy_that_says_so(client: TestClient[Any, Any]) -> None:
    _token, _body, cookie = await sign_in(client, **{"X-Forwarded-Proto": "https"})
    assert cookie["paystream_session"]["secure"] is True


async def test_only_a_hash_of_the_session_token_is_stored(
    client: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    token, body, _cookie = await sign_in(client)
    rows = await db_pool.fetch("SELECT * FROM dashboard_sessions")
    assert len(rows) == 1
    assert rows[0]["id"] == body["session"]["id"]
    assert rows[0]["token_hash"] == token_hash(token)
    assert token not in str(dict(rows[0]))


async def test_the_session_cookie_authenticates_the_merchant_api(client: TestClient[Any, Any]) -> None:
    token, _body, _cookie = await sign_in(client)
    me = await client.get("/api/v1/merchants/me", headers=with_cookie(token))
    assert me.status == 200
    assert (await me.json())["key"] == KEY
    assert (await client.get("/api/v1/payments", headers=with_cookie(token))).status == 200


async def test_session_info_carries_a_csrf_token_and_a_15_minute_merchant_notifier_token(
    client: TestClient[Any, Any],
) -> None:
    token, _body, _cookie = await sign_in(client)
    info = await (await client.get(SESSION, headers=with_cookie(token))).json()
    assert info["signed_in"] is True
    assert info["csrf_token"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)  # the tests' short secret
        claims = jwt.decode(info["notifier"]["token"], JWT_SECRET, algorithms=["HS256"], audience="notifier")
    assert claims["merchant_id"] == "mer_test0000000001"
    assert claims["exp"] - claims["iat"] == 15 * 60
    assert "invoice_id" not in claims and "salon_id" not in claims
    anonymous = await client.get(SESSION)
    assert anonymous.status == 200
    assert await anonymous.json() == {"signed_in": False}


async def test_a_wrong_secret_is_refused_and_sets_no_cookie(client: TestClient[Any, Any]) -> None:
    response = await client.post(
        SESSION, json={"key": KEY, "secret": "wrong"}, headers={"Origin": origin_of(client)}
    )
    assert response.status == 401
    assert "Set-Cookie" not in response.headers
    missing = await client.post(SESSION, json={"key": KEY}, headers={"Origin": origin_of(client)})
    assert missing.status == 422
    assert (await missing.json())["error"]["field"] == "secret"


async def test_the_sixth_failed_sign_in_from_one_address_within_a_minute_is_429(
    client: TestClient[Any, Any],
) -> None:
    origin = {"Origin": origin_of(client)}
    for _ in range(5):
        assert (
            await client.post(SESSION, json={"key": KEY, "secret": "wrong"}, headers=origin)
        ).status == 401
    throttled = await client.post(SESSION, json={"key": KEY, "secret": "wrong"}, headers=origin)
    assert throttled.status == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    assert (await throttled.json())["error"]["code"] == "RATE_LIMITED"
    # Refused before any secret is checked: the right one tells a guesser nothing either.
    right = await client.post(SESSION, json={"key": KEY, "secret": SECRET}, headers=origin)
    assert right.status == 429
    # The API's own key-and-secret budget is another one: integrations keep working.
    assert (await client.get("/api/v1/merchants/me", headers=AUTH)).status == 200


async def test_sign_in_from_another_origin_is_refused(client: TestClient[Any, Any]) -> None:
    for headers in ({"Origin": "http://evil.example"}, {}, {"Origin": "null"}):
        response = await client.post(SESSION, json={"key": KEY, "secret": SECRET}, headers=headers)
        assert response.status == 403, headers
        assert (await response.json())["error"]["code"] == "CSRF_CHECK_FAILED"
        assert "Set-Cookie" not in response.headers


async def test_sign_out_revokes_the_session_server_side(
    client: TestClient[Any, Any], db_pool: asyncpg.Pool
) -> None:
    token, body, _cookie = await sign_in(client)
    headers = with_cookie(token, Origin=origin_of(client), **{"X-CSRF-Token": body["csrf_token"]})
    signed_out = await client.delete(SESSION, headers=headers)
    assert signed_out.status == 204
    cleared: SimpleCookie = SimpleCookie()
    cleared.load(signed_out.headers["Set-Cookie"])
    assert cleared["paystream_session"].value == ""
    # The old cookie, replayed: refused everywhere, however long it was meant to live.
    refused = await client.get("/api/v1/payments", headers=with_cookie(token))
    assert refused.status == 401
    assert (await refused.json())["error"]["code"] == "SESSION_EXPIRED"
    assert await (await client.get(SESSION, headers=with_cookie(token))).json() == {"signed_in": False}
    revoked_at = await db_pool.fetchval(
        "SELECT revoked_at FROM dashboard_sessions WHERE id = $1", body["session"]["id"]
    )
    assert revoked_at is not None


async def test_sign_out_without_the_csrf_token_is_refused_and_revokes_nothing(
    client: TestClient[Any, Any],
) -> None:
    token, _body, _cookie = await sign_in(client)
    response = await client.delete(SESSION, headers=with_cookie(token, Origin=origin_of(client)))
    assert response.status == 403
    assert (await client.get("/api/v1/payments", headers=with_cookie(token))).status == 200


@pytest.mark.parametrize(
    ("column", "value"),
    [("expires_at", "now() - interval '1 second'"), ("last_seen_at", "now() - interval '3 hours'")],
)
async def test_an_expired_or_idle_session_is_refused(
    client: TestClient[Any, Any], db_pool: asyncpg.Pool, column: str, value: str
) -> None:
    token, _body, _cookie = await sign_in(client)
    await db_pool.execute(f"UPDATE dashboard_sessions SET {column} = {value}")
    response = await client.get("/api/v1/payments", headers=with_cookie(token))
    assert response.status == 401
    assert (await response.json())["error"]["code"] == "SESSION_EXPIRED"


async def test_a_request_keeps_the_session_alive(client: TestClient[Any, Any], db_pool: asyncpg.Pool) -> None:
    token, _body, _cookie = await sign_in(client)
    await db_pool.execute("UPDATE dashboard_sessions SET last_seen_at = now() - interval '90 minutes'")
    assert (await client.get("/api/v1/payments", headers=with_cookie(token))).status == 200
    idle = await db_pool.fetchval("SELECT extract(epoch FROM now() - last_seen_at) FROM dashboard_sessions")
    assert idle < 60


WEBHOOK_CONFIG = "/api/v1/webhooks/config"
NEW_CONFIG = {"url": "http://127.0.0.1:9/hook"}


async def test_a_cookie_write_needs_this_origin_and_the_csrf_token_and_changes_nothing_otherwise(
    client: TestClient[Any, Any],
) -> None:
    token, body, _cookie = await sign_in(client)
    csrf = {"X-CSRF-Token": body["csrf_token"]}
    own = {"Origin": origin_of(client)}
    refused = [
        ("no token", with_cookie(token, **own)),
        ("wrong token", with_cookie(token, **own, **{"X-CSRF-Token": "0" * 64})),
        ("another origin", with_cookie(token, Origin="http://evil.example", **csrf)),
        ("another port", with_cookie(token, Origin="http://127.0.0.1:1", **csrf)),
        ("no origin", with_cookie(token, **csrf)),
    ]
    for case, headers in refused:
        response = await client.put(WEBHOOK_CONFIG, json=NEW_CONFIG, headers=headers)
        assert response.status == 403, case
        error = (await response.json())["error"]
        assert error["code"] == "CSRF_CHECK_FAILED", case
        assert error["field"] in ("Origin", "X-CSRF-Token"), case
    unchanged = await (await client.get(WEBHOOK_CONFIG, headers=with_cookie(token))).json()
    assert unchanged["url"] is None
    accepted = await client.put(WEBHOOK_CONFIG, json=NEW_CONFIG, headers=with_cookie(token, **own, **csrf))
    assert accepted.status == 200
    assert (await accepted.json())["url"] == NEW_CONFIG["url"]


async def test_another_sessions_csrf_token_does_not_pass(client: TestClient[Any, Any]) -> None:
    token, _body, _cookie = await sign_in(client)
    _other_token, other_body, _other_cookie = await sign_in(client)
    headers = with_cookie(token, Origin=origin_of(client), **{"X-CSRF-Token": other_body["csrf_token"]})
    assert (await client.put(WEBHOOK_CONFIG, json=NEW_CONFIG, headers=headers)).status == 403


async def test_api_key_headers_take_precedence_over_a_cookie(client: TestClient[Any, Any]) -> None:
    response = await client.put(WEBHOOK_CONFIG, json=NEW_CONFIG, headers=with_cookie("x" * 43, **AUTH))
    assert response.status == 200


@pytest.mark.parametrize(
    "cookie",
    [
        b"paystream_session=",
        b"paystream_session=a\x00b",
        b"paystream_session=\xff\xfe",
        b"paystream_session=" + b"a" * 5000,
    ],
)
async def test_a_malformed_session_cookie_is_a_401_never_a_500(
    client: TestClient[Any, Any], cookie: bytes
) -> None:
    url = client.make_url("/")
    for path in ("/api/v1/payments", SESSION, "/dashboard"):
        response = await raw_request(
            url.host or "127.0.0.1", url.port or 80, "GET", path, [(b"Cookie", cookie)]
        )
        assert response.status in (200, 400, 401), (path, response.status)
        if path == "/api/v1/payments":
            assert response.status in (400, 401)


async def test_pages_answer_the_sign_in_page_without_a_session_and_deny_framing(
    client: TestClient[Any, Any],
) -> None:
    for path in (
        "/dashboard",
        "/dashboard/webhooks",
        "/dashboard/webhooks/we_x",
        "/dashboard/streams",
        "/dashboard/docs",
        "/dashboard/payments/pay_x",
    ):
        response = await client.get(path)
        assert response.status == 200
        text = await response.text()
        assert 'data-test-id="login-form"' in text, path
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "unsafe-inline" not in response.headers["Content-Security-Policy"]
    token, _body, _cookie = await sign_in(client)
    signed_in = await (await client.get("/dashboard", headers=with_cookie(token))).text()
    assert 'data-test-id="payments-table"' in signed_in


@pytest.mark.parametrize(
    ("path", "section"),
    [
        ("/dashboard", "payments"),
        ("/dashboard/payments/pay_0000000000000001", "payments"),
        ("/dashboard/webhooks", "webhooks"),
        ("/dashboard/webhooks/we_00000000000000000000000000000001", "webhooks"),
        ("/dashboard/streams", "streams"),
        ("/dashboard/docs", "docs"),
    ],
)
async def test_every_page_has_the_one_sidebar_with_its_section_current(
    client: TestClient[Any, Any], path: str, section: str
) -> None:
    token, _body, _cookie = await sign_in(client)
    response = await client.get(path, headers=with_cookie(token))
    assert response.status == 200
    html = await response.text()
    assert html.count('<aside class="sidebar">') == 1
    assert "<!-- dashboard sidebar -->" not in html
    assert html.count('aria-current="page"') == 1
    assert f'data-test-id="nav-{section}" aria-current="page"' in html
