"""Handshake authentication and the notifier's settings: every refusal says why."""

from __future__ import annotations

import time

import aiohttp
import jwt
import pytest
import redis.asyncio as aioredis

from notifier.settings import NotifierSettings, parse_origins
from paystream.errors import SettingsError
from paystream_devstack.testing import eventually
from paystream_devstack.testing.notifier_client import (
    JWT_SECRET,
    MERCHANT_A,
    ClientFactory,
    ServerFactory,
    make_token,
    payment_event,
    publish,
    sign,
)


def refusal(client_errors: list[object]) -> dict[str, object]:
    assert len(client_errors) == 1, client_errors
    error = client_errors[0]
    assert isinstance(error, dict)
    return error


@pytest.mark.parametrize(
    ("token", "code", "message"),
    [
        (None, "TOKEN_MISSING", "authentication token missing"),
        ("not-a-jwt", "TOKEN_MALFORMED", "authentication token malformed: not a valid JWT"),
        (
            sign({"sub": "u", "exp": int(time.time()) + 300}, JWT_SECRET + "-but-not-the-same-one"),
            "TOKEN_SIGNATURE_INVALID",
            "authentication token signature invalid",
        ),
        (
            make_token(MERCHANT_A, secret="another-secret-of-at-least-32-bytes!!"),
            "TOKEN_SIGNATURE_INVALID",
            "authentication token signature invalid",
        ),
        (make_token(MERCHANT_A, expires_in=-5), "TOKEN_EXPIRED", "authentication token expired"),
        ("eyJ\u00e9.\x00.x", "TOKEN_MALFORMED", "authentication token malformed: not a valid JWT"),
    ],
    ids=["missing", "malformed", "bad-signature-and-claims", "bad-signature", "expired", "not-ascii"],
)
async def test_refused_handshakes_say_why(
    notifier_url: str, connect_client: ClientFactory, token: str | None, code: str, message: str
) -> None:
    client = await connect_client(notifier_url, token=token, expect_refusal=True)

    assert not client.sio.connected
    error = refusal(client.connect_errors)
    assert error["message"] == message
    assert error["data"] == {"code": code}


@pytest.mark.parametrize(
    ("claims", "message"),
    [
        ({"merchant_id": None}, "authentication token malformed: missing merchant_id"),
        ({"merchant_id": 42}, "authentication token malformed: invalid merchant_id"),
        ({"merchant_id": "mer_a:salon"}, "authentication token malformed: invalid merchant_id"),
        ({"salon_id": ""}, "authentication token malformed: invalid salon_id"),
        ({"sub": None}, "authentication token malformed: missing sub"),
        ({"aud": None}, "authentication token malformed: missing aud"),
        ({"invoice_id": ""}, "authentication token malformed: invalid invoice_id"),
    ],
)
async def test_tokens_with_bad_claims_are_malformed(
    notifier_url: str, connect_client: ClientFactory, claims: dict[str, object], message: str
) -> None:
    body: dict[str, object] = {
        "sub": "user_1",
        "merchant_id": MERCHANT_A,
        "exp": int(time.time()) + 60,
        "aud": "notifier",
    }
    body.update(claims)
    body = {key: value for key, value in body.items() if value is not None}
    client = await connect_client(notifier_url, token=sign(body), expect_refusal=True)

    error = refusal(client.connect_errors)
    assert error == {"message": message, "data": {"code": "TOKEN_MALFORMED"}}


@pytest.mark.parametrize("audience", ["api", ["dashboard"], "notifier-x"])
async def test_a_token_for_another_audience_is_refused(
    notifier_url: str, connect_client: ClientFactory, audience: object
) -> None:
    client = await connect_client(
        notifier_url, token=make_token(MERCHANT_A, aud=audience), expect_refusal=True
    )

    assert refusal(client.connect_errors) == {
        "message": "authentication token is not for the notifier: aud must be notifier",
        "data": {"code": "TOKEN_AUDIENCE_INVALID"},
    }


async def test_token_without_exp_is_refused(notifier_url: str, connect_client: ClientFactory) -> None:
    client = await connect_client(
        notifier_url,
        token=sign({"sub": "u", "merchant_id": MERCHANT_A, "aud": "notifier"}),
        expect_refusal=True,
    )

    assert refusal(client.connect_errors)["message"] == "authentication token malformed: missing exp"


async def test_unsigned_token_is_refused(notifier_url: str, connect_client: ClientFactory) -> None:
    unsigned = jwt.encode(
        {"sub": "u", "merchant_id": MERCHANT_A, "exp": int(time.time()) + 60}, None, algorithm="none"
    )
    client = await connect_client(notifier_url, token=unsigned, expect_refusal=True)

    error = refusal(client.connect_errors)
    assert error["data"] == {"code": "TOKEN_SIGNATURE_INVALID"}


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_bearer_header_authenticates(
    notifier_url: str, connect_client: ClientFactory, redis: aioredis.Redis, transport: str
) -> None:
    client = await connect_client(
        notifier_url, headers={"Authorization": f"Bearer {make_token(MERCHANT_A)}"}, transport=transport
    )
    await publish(redis, payment_event())

    updates = await client.wait_for("payment:status-update")
    assert updates[0]["status"] == "SUCCESS"


async def test_socket_is_closed_when_its_token_expires(
    notifier_url: str, connect_client: ClientFactory
) -> None:
    client = await connect_client(notifier_url, token=make_token(MERCHANT_A, expires_in=1))

    assert client.sio.connected
    await eventually(lambda: client.disconnects == 1, timeout=5)
    # Why: the server said so before closing (and it is the last thing the socket received).
    assert client.events("session:expired") == [
        {"code": "TOKEN_EXPIRED", "message": "authentication token expired"}
    ]
    assert client.received[-1].name == "session:expired"


async def test_cors_allows_only_configured_origins(start_notifier: ServerFactory) -> None:
    url = await start_notifier(FRONTEND_ORIGINS="https://pos.example.com, https://admin.example.com/")
    handshake = f"{url}/socket.io/?EIO=4&transport=polling"
    async with aiohttp.ClientSession() as http:
        async with http.get(handshake, headers={"Origin": "https://pos.example.com"}) as allowed:
            assert allowed.status == 200
            assert allowed.headers["Access-Control-Allow-Origin"] == "https://pos.example.com"
        async with http.get(handshake, headers={"Origin": "https://evil.example.net"}) as refused:
            assert refused.status == 400


async def test_health_and_metrics(notifier_url: str, connect_client: ClientFactory) -> None:
    await connect_client(notifier_url, token=make_token(MERCHANT_A))
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{notifier_url}/health") as health:
            assert health.status == 200
            assert (await health.json())["status"] == "ok"
        async with http.get(f"{notifier_url}/metrics") as metrics:
            text = await metrics.text()
    assert "paystream_notifier_connected_sockets 1.0" in text


def test_settings_require_a_jwt_secret() -> None:
    environ = {"REDIS_URL": "redis://127.0.0.1:6379/0", "DATABASE_URL": "postgresql://u@h/db"}
    with pytest.raises(SettingsError, match="JWT_SECRET"):
        NotifierSettings.from_env(environ)
    with pytest.raises(SettingsError, match="JWT_SECRET must be at least 32 bytes"):
        NotifierSettings.from_env({**environ, "JWT_SECRET": "short"})
    settings = NotifierSettings.from_env({**environ, "JWT_SECRET": "short", "TEST_MODE": "true"})
    assert settings.port == 8080
    assert settings.catchup_window_s == 600
    assert settings.frontend_origins == "*"


def test_frontend_origins() -> None:
    assert parse_origins(None, test_mode=False) is None  # same origin only
    assert parse_origins("", test_mode=True) == "*"
    assert parse_origins("https://a.example, http://b.example:3000/", test_mode=False) == [
        "https://a.example",
        "http://b.example:3000",
    ]
    assert parse_origins("*", test_mode=False) == "*"
    with pytest.raises(SettingsError, match="FRONTEND_ORIGINS"):
        parse_origins("a.example", test_mode=False)
