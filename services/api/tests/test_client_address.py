"""The client address behind a trusted reverse proxy (`TRUSTED_PROXIES`), on the real app: the
per-address budgets (failed authentications, the checkout's public reads, dashboard sign-ins) and
the address stored on a dashboard session count the client named by `X-Forwarded-For` only when the
TCP peer is a trusted proxy; from anyone else the header changes nothing, and no header, however
malformed, is a 5xx."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

import asyncpg
import pytest
from aiohttp import DummyCookieJar
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from paystream.errors import SettingsError
from paystream_api.app import create_app
from paystream_api.settings import ApiSettings
from paystream_devstack.testing.rawhttp import raw_request

ME = "/api/v1/merchants/me"
SESSION = "/dashboard/session"
KEY = "key_test_abc123"
SECRET = "secret_test_xyz789"
RIGHT = {"X-Api-Key": KEY, "X-Api-Secret": SECRET}
WRONG = {"X-Api-Key": KEY, "X-Api-Secret": "not-the-secret"}
BUDGET = 3
# Failures a minute per address; the per-key budget is out of the way.
LIMITS = {"AUTH_FAILURES_PER_IP": str(BUDGET), "AUTH_FAILURES_PER_KEY": "1000"}

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
async def make_client(service_env: dict[str, str]) -> AsyncIterator[MakeClient]:
    """Factory: the API with these settings, listening on `host` (loopback, so the TCP peer of
    every test request is 127.0.0.1 or ::1); every client it made is closed at the end."""
    clients: list[TestClient[Any, Any]] = []

    async def make(host: str = "127.0.0.1", **env: str) -> TestClient[Any, Any]:
        app = create_app(ApiSettings.from_env({**service_env, **LIMITS, **env}))
        client: TestClient[Any, Any] = TestClient(TestServer(app, host=host), cookie_jar=DummyCookieJar())
        await client.start_server()
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.close()


def forwarded(*chain: str) -> dict[str, str]:
    return {"X-Forwarded-For": ", ".join(chain)}


async def spend_failure_budget(client: TestClient[Any, Any], headers: dict[str, str]) -> None:
    for _ in range(BUDGET):
        assert (await client.get(ME, headers={**WRONG, **headers})).status == 401


async def status_of(
    client: TestClient[Any, Any], credentials: dict[str, str], headers: dict[str, str]
) -> int:
    response = await client.get(ME, headers={**credentials, **headers})
    return response.status


async def signed_in_address(
    client: TestClient[Any, Any], db_pool: asyncpg.Pool, headers: Mapping[str, str]
) -> str:
    """Sign in to the dashboard with these headers: the client address stored on the session."""
    sent = CIMultiDict(headers)
    sent["Origin"] = str(client.make_url("/").origin())
    response = await client.post(SESSION, json={"key": KEY, "secret": SECRET}, headers=sent)
    assert response.status == 200, await response.text()
    session_id = (await response.json())["session"]["id"]
    address: str = await db_pool.fetchval(
        "SELECT client_address FROM dashboard_sessions WHERE id = $1", session_id
    )
    return address


# --- nobody trusted: today's behaviour -----------------------------------------------------------


async def test_without_trusted_proxies_the_header_is_ignored_and_the_peer_is_counted(
    make_client: MakeClient, db_pool: asyncpg.Pool
) -> None:
    client = await make_client()
    await spend_failure_budget(client, forwarded("203.0.113.1"))
    # Another "client" by its header is the same peer: locked out, even with the right secret.
    assert await status_of(client, RIGHT, forwarded("203.0.113.2")) == 429
    assert await status_of(client, RIGHT, {}) == 429


async def test_a_spoofed_header_from_an_untrusted_peer_changes_nothing(
    make_client: MakeClient, db_pool: asyncpg.Pool
) -> None:
    client = await make_client(TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.0/24, fd00::/8")
    for attempt in range(BUDGET):
        # A fresh address each time, and ones that are trusted proxies: none of it is believed.
        spoofed = forwarded(f"203.0.113.{attempt}", "10.0.0.1")
        assert await status_of(client, WRONG, spoofed) == 401
    assert await status_of(client, RIGHT, forwarded("198.51.100.9")) == 429
    assert await signed_in_address(client, db_pool, forwarded("198.51.100.9")) == "127.0.0.1"


# --- the loopback trusted -------------------------------------------------------------------------


async def test_two_clients_behind_a_trusted_proxy_have_separate_budgets(make_client: MakeClient) -> None:
    client = await make_client(TRUSTED_PROXIES="127.0.0.0/8")
    await spend_failure_budget(client, forwarded("203.0.113.1"))
    assert await status_of(client, RIGHT, forwarded("203.0.113.1")) == 429
    # The other client, and the proxy itself (no header), still have theirs.
    assert await status_of(client, WRONG, forwarded("203.0.113.2")) == 401
    assert await status_of(client, RIGHT, forwarded("203.0.113.2")) == 200
    assert await status_of(client, RIGHT, {}) == 200


async def test_a_chain_of_trusted_hops_names_the_client_left_of_them(
    make_client: MakeClient, db_pool: asyncpg.Pool
) -> None:
    client = await make_client(TRUSTED_PROXIES="127.0.0.1,10.0.0.0/8,198.51.100.0/28")
    # One client through different trusted hops (and with junk of its own on the left) is one budget.
    spellings = [
        forwarded("203.0.113.7"),
        forwarded("203.0.113.7", "198.51.100.2", "10.1.2.3"),
        forwarded("not-an-address", "127.0.0.5", "203.0.113.7", "10.9.9.9"),
    ]
    for headers in spellings:
        assert await status_of(client, WRONG, headers) == 401
    assert await status_of(client, RIGHT, forwarded("203.0.113.7", "10.1.2.3")) == 429
    assert await status_of(client, RIGHT, forwarded("203.0.113.8", "198.51.100.2", "10.1.2.3")) == 200
    # Several headers are one list, in order.
    two_headers = CIMultiDict(
        [("X-Forwarded-For", "192.0.2.1, 203.0.113.9"), ("X-Forwarded-For", "10.1.2.3")]
    )
    assert await signed_in_address(client, db_pool, two_headers) == "203.0.113.9"
    # Every hop trusted: the peer.
    assert await signed_in_address(client, db_pool, forwarded("10.0.0.1", "198.51.100.1")) == "127.0.0.1"


async def test_the_dashboard_sign_in_budget_and_the_session_address_are_the_clients(
    make_client: MakeClient, db_pool: asyncpg.Pool
) -> None:
    client = await make_client(TRUSTED_PROXIES="127.0.0.0/8", DASHBOARD_SIGNIN_FAILURES_PER_IP="2")
    origin = str(client.make_url("/").origin())
    wrong = {"key": KEY, "secret": "not-the-secret"}
    for _ in range(2):
        response = await client.post(
            SESSION, json=wrong, headers={"Origin": origin, **forwarded("203.0.113.1")}
        )
        assert response.status == 401
    response = await client.post(SESSION, json=wrong, headers={"Origin": origin, **forwarded("203.0.113.1")})
    assert response.status == 429
    assert await signed_in_address(client, db_pool, forwarded("203.0.113.2")) == "203.0.113.2"
    assert await signed_in_address(client, db_pool, forwarded("::ffff:198.51.100.4")) == "198.51.100.4"
    assert await signed_in_address(client, db_pool, forwarded("[2001:DB8::0:1]:443")) == "2001:db8::1"


async def test_the_checkout_read_budget_counts_the_client(make_client: MakeClient) -> None:
    client = await make_client(TRUSTED_PROXIES="127.0.0.0/8", PUBLIC_READS_PER_IP="2")
    path = "/api/v1/public/orders/order_AAAAAAAAAAAAAAAA"

    async def read(address: str) -> int:
        response = await client.get(path, params={"key": "key_made_up"}, headers=forwarded(address))
        return response.status

    assert [await read("203.0.113.1") for _ in range(3)] == [401, 401, 429]
    assert await read("203.0.113.2") == 401


# --- IPv6 -------------------------------------------------------------------------------------------


async def test_ipv6_peers_and_clients(make_client: MakeClient, db_pool: asyncpg.Pool) -> None:
    trusting = await make_client(host="::1", TRUSTED_PROXIES="::1")
    await spend_failure_budget(trusting, forwarded("2001:db8::1"))
    assert await status_of(trusting, RIGHT, forwarded("2001:db8:0::1")) == 429  # the same address
    assert await status_of(trusting, RIGHT, forwarded("2001:db8::2")) == 200
    assert await status_of(trusting, RIGHT, forwarded("198.51.100.7")) == 200
    assert await signed_in_address(trusting, db_pool, forwarded("2001:db8::2", "::1")) == "2001:db8::2"

    untrusting = await make_client(host="::1", TRUSTED_PROXIES="127.0.0.0/8")
    assert await signed_in_address(untrusting, db_pool, forwarded("2001:db8::2")) == "::1"


# --- malformed headers --------------------------------------------------------------------------

MALFORMED: list[bytes] = [
    b"\xff\xfe203.0.113.1",  # not UTF-8
    b"203.0.113.1\x00",
    b"203.0.113.001",
    b"\xef\xbc\x92\xef\xbc\x90\xef\xbc\x93.0.113.1",  # fullwidth digits
    b"fe80::1%eth0",
    b"unknown",
    b"1" * 8000,
    b", ".join([b"127.0.0.2"] * 40),
    b"203.0.113.1, " * 300,
]


@pytest.mark.parametrize("value", MALFORMED, ids=[f"malformed-{index}" for index in range(len(MALFORMED))])
async def test_a_malformed_header_is_never_a_5xx_and_counts_the_peer(
    make_client: MakeClient, value: bytes
) -> None:
    client = await make_client(TRUSTED_PROXIES="127.0.0.0/8")
    server = client.server
    for _ in range(BUDGET):
        response = await raw_request(
            server.host, server.port, "GET", ME, [*WRONG.items(), (b"X-Forwarded-For", value)]
        )
        # 401 when the header reached the app; 400 when aiohttp's parser refused it first (a NUL,
        # a field over 8 KB: the service's own runner answers those in JSON, test_http_errors).
        assert response.status in (400, 401), response.body
        if response.status == 401:
            assert isinstance(response.json(), dict)
    reached_the_app = response.status == 401
    # The failures, where counted, were the peer's: the proxy itself is now locked out.
    assert await status_of(client, RIGHT, {}) == (429 if reached_the_app else 200)


# --- the setting ------------------------------------------------------------------------------


def test_a_bad_trusted_proxies_entry_stops_start_up(service_env: dict[str, str]) -> None:
    with pytest.raises(SettingsError, match=r"^TRUSTED_PROXIES: '10\.0\.0\.1/8' is not"):
        ApiSettings.from_env({**service_env, "TRUSTED_PROXIES": "127.0.0.1, 10.0.0.1/8"})


# --- property: any header bytes, through the real app ---------------------------------------------


@pytest.fixture(scope="module")
async def trusting_client(redis_url: str, database_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    """One app behind a trusted loopback, with budgets that arbitrary input cannot spend."""
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "JWT_SECRET": "test-jwt-secret",
        "TEST_MODE": "true",
        "TRUSTED_PROXIES": "127.0.0.0/8,::1",
        "AUTH_FAILURES_PER_IP": "1000000",
        "AUTH_FAILURES_PER_KEY": "1000000",
    }
    async with TestClient(TestServer(create_app(ApiSettings.from_env(env)))) as client:
        yield client


FORWARDED_BYTES = st.one_of(
    st.binary(max_size=200),
    st.lists(st.ip_addresses().map(str), max_size=20).map(lambda hops: ", ".join(hops).encode()),
    st.text(alphabet="0123456789abcdef:.[]%, \t", max_size=100).map(str.encode),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(FORWARDED_BYTES, min_size=1, max_size=3))
async def test_any_forwarded_for_bytes_are_never_a_5xx(
    trusting_client: TestClient[Any, Any], values: list[bytes]
) -> None:
    server = trusting_client.server
    headers = [*WRONG.items(), *((b"X-Forwarded-For", value) for value in values)]
    response = await raw_request(server.host, server.port, "GET", ME, headers)
    # 401 from the app; 400 when aiohttp's parser refused a control character first.
    assert response.status in (400, 401), response.body
