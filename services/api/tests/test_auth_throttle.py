"""Failed authentication is throttled per client address and per API key; the right secret is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from paystream_api.app import create_app
from paystream_api.settings import ApiSettings
from paystream_devstack.testing.rawhttp import raw_request

ME = "/api/v1/merchants/me"
RIGHT = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
WRONG = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "not-the-secret"}


async def _client(service_env: dict[str, str], **limits: str) -> TestClient[Any, Any]:
    app = create_app(ApiSettings.from_env({**service_env, **limits}))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
async def per_address_limited(service_env: dict[str, str]) -> AsyncIterator[TestClient[Any, Any]]:
    client = await _client(service_env, AUTH_FAILURES_PER_IP="5", AUTH_FAILURES_PER_KEY="1000")
    yield client
    await client.close()


@pytest.fixture
async def per_key_limited(service_env: dict[str, str]) -> AsyncIterator[TestClient[Any, Any]]:
    client = await _client(service_env, AUTH_FAILURES_PER_IP="1000", AUTH_FAILURES_PER_KEY="5")
    yield client
    await client.close()


async def test_an_address_past_its_failure_budget_gets_429_with_retry_after_for_every_attempt(
    per_address_limited: TestClient[Any, Any],
) -> None:
    for _ in range(5):
        assert (await per_address_limited.get(ME, headers=WRONG)).status == 401
    throttled = await per_address_limited.get(ME, headers=WRONG)
    assert throttled.status == 429
    assert 1 <= int(throttled.headers["Retry-After"]) <= 60
    body = await throttled.json()
    assert body["error"]["code"] == "RATE_LIMITED"
    # Checked before any secret: the answer tells a guesser nothing, even for the right one.
    assert (await per_address_limited.get(ME, headers=RIGHT)).status == 429


async def test_a_key_past_its_failure_budget_refuses_wrong_secrets_but_never_the_right_one(
    per_key_limited: TestClient[Any, Any],
) -> None:
    for _ in range(5):
        assert (await per_key_limited.get(ME, headers=WRONG)).status == 401
    throttled = await per_key_limited.get(ME, headers=WRONG)
    assert throttled.status == 429
    assert "Retry-After" in throttled.headers
    for _ in range(3):
        response = await per_key_limited.get(ME, headers=RIGHT)
        assert response.status == 200
        assert (await response.json())["key"] == RIGHT["X-Api-Key"]


async def test_a_thousand_wrong_secrets_are_mostly_refused_with_429(
    service_env: dict[str, str],
) -> None:
    client = await _client(service_env)  # the defaults
    try:
        statuses = [(await client.get(ME, headers=WRONG)).status for _ in range(100)]
    finally:
        await client.close()
    assert statuses.count(401) == 20
    assert statuses.count(429) == 80


@pytest.mark.parametrize(
    "headers",
    [
        {"X-Api-Key": "key_\udcff", "X-Api-Secret": "x"},
        {"X-Api-Key": "key with space", "X-Api-Secret": "x"},
        {"X-Api-Key": "k" * 300, "X-Api-Secret": "x"},
        {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "caf\u00e9"},
    ],
    ids=["not-utf8", "space", "too-long", "non-ascii-secret"],
)
async def test_malformed_credentials_are_400_naming_the_header(
    per_key_limited: TestClient[Any, Any], headers: dict[str, str]
) -> None:
    server = per_key_limited.server
    response = await raw_request(server.host, server.port, "GET", ME, list(headers.items()))
    assert response.status == 400
    body: Any = response.json()
    assert body["error"]["field"] in headers
