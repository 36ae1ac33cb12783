"""Property-based: arbitrary bad input to every write endpoint and query parameter of the merchant API
is a 4xx JSON error that names the field, and stores nothing.

Each body property starts from a valid request and spoils one field (or adds an unknown one) with a
value that field can never take: a string holding a control character, digits that are not ASCII, a
number with thousands of digits, the wrong type. Each query property sends a parameter value that is
not allowed. A last property sends arbitrary JSON documents and asks only for no 5xx.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import asyncpg
import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from paystream_api.app import create_app
from paystream_api.seed import seed_test_merchant
from paystream_api.settings import ApiSettings

AUTH = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "secret_test_xyz789"}
STORED_TABLES = (
    "orders",
    "payments",
    "refunds",
    "outbox",
    "idempotency_keys",
    "invoice_owners",
    "webhook_endpoints",
    "webhook_deliveries",
)
UNKNOWN_PAYMENT = "pay_AAAAAAAAAAAAAAAA"
PROPERTY_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)  # what JSON encoders write as integers
# Control characters no field accepts (tab and line breaks are allowed in free text).
FORBIDDEN = st.sampled_from([chr(c) for c in (*range(0x00, 0x09), 0x0B, 0x0C, *range(0x0E, 0x20), 0x7F)])
NON_ASCII_DIGITS = st.text(alphabet="²³¹⁰٠١٢٣٤٥٦٧٨٩०१२३४५६७८९０１２３", min_size=1, max_size=6)


@st.composite
def with_control_character(draw: st.DrawFn) -> str:
    text = draw(st.text(max_size=20))
    at = draw(st.integers(min_value=0, max_value=len(text)))
    return text[:at] + draw(FORBIDDEN) + text[at:]


BAD_STRING = with_control_character()
HUGE_DIGITS = st.integers(min_value=20, max_value=6000).map(lambda n: "9" * n)
BAD_NUMBER = st.one_of(
    NON_ASCII_DIGITS,
    HUGE_DIGITS,
    BAD_STRING,
    st.floats(allow_nan=False, allow_infinity=False).filter(lambda f: not f.is_integer()),
    st.integers(min_value=-(2**63), max_value=0),
    st.integers(min_value=10**11, max_value=2**63 - 1),
    st.booleans(),
    st.lists(INT64, max_size=2),
)
WRONG_TYPE = st.one_of(st.lists(INT64, max_size=2), st.dictionaries(st.text(max_size=3), INT64, max_size=2))
BAD_TEXT = st.one_of(BAD_STRING, WRONG_TYPE, INT64, st.booleans())


def card() -> dict[str, Any]:
    return {
        "number": "4111111111111111",
        "expiry_month": 12,
        "expiry_year": datetime.now(UTC).year + 2,
        "cvv": "123",
        "holder_name": "A B",
    }


# endpoint -> (path, a valid body, {field path: strategy of values that field never accepts})
BODY_ENDPOINTS: dict[str, tuple[str, str, Callable[[], dict[str, Any]], dict[str, Any]]] = {
    "order": (
        "POST",
        "/api/v1/orders",
        lambda: {"amount": 5000, "currency": "INR", "receipt": "r-1", "notes": {"k": "v"}},
        {
            "amount": BAD_NUMBER,
            "currency": st.one_of(BAD_TEXT, NON_ASCII_DIGITS),
            "receipt": BAD_TEXT,
            "notes": st.one_of(BAD_STRING, st.lists(INT64, min_size=1, max_size=2)),
            "notes.k": st.one_of(BAD_STRING, WRONG_TYPE),
        },
    ),
    "upi payment": (
        "POST",
        "/api/v1/payments",
        lambda: {"order_id": "ref-1", "amount": 5000, "currency": "INR", "method": "upi", "vpa": "a@okbank"},
        {
            "order_id": BAD_TEXT,
            "amount": BAD_NUMBER,
            "currency": st.one_of(BAD_TEXT, NON_ASCII_DIGITS),
            "method": st.one_of(BAD_TEXT, NON_ASCII_DIGITS),
            "vpa": st.one_of(BAD_TEXT, NON_ASCII_DIGITS),
        },
    ),
    "card payment": (
        "POST",
        "/api/v1/payments",
        lambda: {"order_id": "ref-2", "amount": 5000, "method": "card", "card": card()},
        {
            "card": st.one_of(BAD_STRING, st.lists(INT64, max_size=2), INT64),
            "card.number": st.one_of(BAD_TEXT, NON_ASCII_DIGITS, HUGE_DIGITS),
            "card.expiry_month": BAD_NUMBER,
            "card.expiry_year": BAD_NUMBER,
            "card.cvv": st.one_of(BAD_TEXT, NON_ASCII_DIGITS, HUGE_DIGITS),
            "card.holder_name": BAD_TEXT,
        },
    ),
    "capture": (
        "POST",
        f"/api/v1/payments/{UNKNOWN_PAYMENT}/capture",
        lambda: {"amount": 5000},
        {"amount": BAD_NUMBER},
    ),
    "refund": (
        "POST",
        f"/api/v1/payments/{UNKNOWN_PAYMENT}/refunds",
        lambda: {"amount": 100, "reason": "asked"},
        {"amount": BAD_NUMBER, "reason": BAD_TEXT},
    ),
    "webhook config": (
        "PUT",
        "/api/v1/webhooks/config",
        lambda: {"url": "http://127.0.0.1:9/hook", "events": ["payment.success"], "enabled": True},
        {
            "url": st.one_of(BAD_TEXT, NON_ASCII_DIGITS),
            "events": st.one_of(BAD_STRING, st.lists(BAD_STRING, min_size=1, max_size=2), INT64),
            "enabled": st.one_of(BAD_STRING, INT64, st.lists(INT64, max_size=1)),
        },
    ),
}

# list endpoint -> {query parameter: strategy of values it never accepts}
BAD_INTEGER_PARAMETER = st.one_of(
    NON_ASCII_DIGITS,
    HUGE_DIGITS,
    BAD_STRING,
    st.from_regex(r"-[1-9][0-9]{0,3}|[0-9]+\.[0-9]+|[a-z]{1,5}", fullmatch=True),
)
QUERY_ENDPOINTS: dict[str, dict[str, Any]] = {
    "/api/v1/payments": {
        "limit": BAD_INTEGER_PARAMETER,
        "offset": BAD_INTEGER_PARAMETER,
        "status": st.one_of(BAD_STRING, NON_ASCII_DIGITS, st.text(alphabet="xyz", min_size=1, max_size=4)),
    },
    "/api/v1/webhooks": {
        "limit": BAD_INTEGER_PARAMETER,
        "offset": BAD_INTEGER_PARAMETER,
        "status": st.one_of(BAD_STRING, NON_ASCII_DIGITS, st.text(alphabet="xyz", min_size=1, max_size=4)),
        "event": BAD_STRING,
    },
}


@pytest.fixture(scope="module")
async def client(redis_url: str, database_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    env = {
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "JWT_SECRET": "test-jwt-secret",
        "TEST_MODE": "true",
        "WEBHOOK_ALLOWED_PRIVATE_NETS": "127.0.0.0/8",
        # These tests send malformed credentials on purpose, from one address, through one app for
        # the whole module: the failure budgets (tested in test_auth_throttle.py) must not answer
        # 429 to the inputs checked here.
        "AUTH_FAILURES_PER_IP": "1000000",
        "AUTH_FAILURES_PER_KEY": "1000000",
    }
    app = create_app(ApiSettings.from_env(env))
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


@pytest.fixture(autouse=True)
async def merchant_seeded(db_pool: asyncpg.Pool) -> None:
    """The module's app outlives the tests of other modules run in between on the same worker, and
    those empty the database: without its merchant every request here would be a 401, and the
    app's per-address budget would then answer 429 to the rest."""
    async with db_pool.acquire() as conn, conn.transaction():
        await seed_test_merchant(conn)


COUNT_STORED = "SELECT " + ", ".join(f"(SELECT count(*) FROM {table}) AS {table}" for table in STORED_TABLES)


async def stored(db_pool: asyncpg.Pool) -> dict[str, int]:
    row = await db_pool.fetchrow(COUNT_STORED)
    return dict(row) if row else {}


def _spoil(body: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    target = body
    *parents, name = path.split(".")
    for parent in parents:
        target = target[parent]
    target[name] = value
    return body


def _names(reported: str | None, field: str) -> bool:
    """The error names the spoiled field, or a part of it (`events[0]` of `events`)."""
    return reported is not None and (reported == field or reported.startswith((f"{field}.", f"{field}[")))


async def _error_of(response: Any) -> dict[str, Any]:
    assert 400 <= response.status < 500, (response.status, await response.text())
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    return body["error"]


@pytest.mark.parametrize("endpoint", sorted(BODY_ENDPOINTS))
@PROPERTY_SETTINGS
@given(data=st.data())
async def test_a_spoiled_field_is_a_4xx_naming_it_and_nothing_is_stored(
    client: TestClient[Any, Any], db_pool: asyncpg.Pool, endpoint: str, data: st.DataObject
) -> None:
    method, path, valid_body, spoilers = BODY_ENDPOINTS[endpoint]
    field = data.draw(st.sampled_from(sorted(spoilers)), label="field")
    value = data.draw(spoilers[field], label="value")
    before = await stored(db_pool)
    body = _spoil(valid_body(), field, value)
    response = await client.request(method, path, data=orjson.dumps(body), headers=AUTH)
    error = await _error_of(response)
    assert _names(error["field"], field), (field, value, error)
    assert await stored(db_pool) == before


@pytest.mark.parametrize("endpoint", sorted(BODY_ENDPOINTS))
@PROPERTY_SETTINGS
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12))
async def test_an_unknown_parameter_is_refused_naming_it(
    client: TestClient[Any, Any], db_pool: asyncpg.Pool, endpoint: str, name: str
) -> None:
    method, path, valid_body, _ = BODY_ENDPOINTS[endpoint]
    body = valid_body()
    if name in body:
        return
    body[name] = "x"
    before = await stored(db_pool)
    error = await _error_of(await client.request(method, path, data=orjson.dumps(body), headers=AUTH))
    assert error["field"] == name
    assert await stored(db_pool) == before


@pytest.mark.parametrize("path", sorted(QUERY_ENDPOINTS))
@PROPERTY_SETTINGS
@given(data=st.data())
async def test_a_bad_query_parameter_is_a_4xx_naming_it(
    client: TestClient[Any, Any], path: str, data: st.DataObject
) -> None:
    parameters = QUERY_ENDPOINTS[path]
    name = data.draw(st.sampled_from(sorted(parameters)), label="name")
    value = data.draw(parameters[name], label="value")
    error = await _error_of(await client.get(f"{path}?{name}={quote(value, safe='')}", headers=AUTH))
    assert error["field"] == name, (name, value, error)


@pytest.mark.parametrize(
    "template",
    ["/api/v1/payments/{}", "/api/v1/refunds/{}", "/api/v1/orders/{}", "/api/v1/webhooks/{}/retry"],
)
@PROPERTY_SETTINGS
@given(segment=st.one_of(BAD_STRING, st.text(min_size=1, max_size=40), NON_ASCII_DIGITS))
async def test_any_path_segment_is_a_json_404_never_a_500(
    client: TestClient[Any, Any], template: str, segment: str
) -> None:
    method = "POST" if template.endswith("/retry") else "GET"
    url = template.format(quote(segment, safe=""))
    error = await _error_of(await client.request(method, url, headers=AUTH))
    assert error["code"] == "NOT_FOUND_ERROR"


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.mark.parametrize("endpoint", sorted(BODY_ENDPOINTS))
@PROPERTY_SETTINGS
@given(document=JSON_VALUES)
async def test_arbitrary_json_is_never_a_5xx(
    client: TestClient[Any, Any], endpoint: str, document: Any
) -> None:
    method, path, _, _ = BODY_ENDPOINTS[endpoint]
    response = await client.request(method, path, data=orjson.dumps(document), headers=AUTH)
    assert response.status < 500, await response.text()
    assert response.content_type == "application/json"
