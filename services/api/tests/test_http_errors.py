"""Requests aiohttp's parser refuses are answered in the platform's JSON error shape, by the real
service process (its `serve()`), without echoing a byte of the input."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from paystream_devstack.testing import ServiceProcess
from paystream_devstack.testing.rawhttp import raw_request

ME = "/api/v1/merchants/me"


@pytest.fixture
def api_port(service_env: dict[str, str], spawn_service: Callable[..., ServiceProcess]) -> int:
    spawn_service("paystream_api", service_env)
    return int(service_env["API_PORT"])


@pytest.mark.parametrize(
    ("headers", "marker"),
    [
        ([("X-Api-Key", b"key_\x01secret-marker")], b"secret-marker"),
        ([("X-Api-Key", b"key_\x00secret-marker")], b"secret-marker"),
        ([("X-Api-Secret", b"secret-marker" + b"a" * 9000)], b"secret-marker"),
        ([(b"X-Bad\x7fName", b"secret-marker")], b"secret-marker"),
    ],
    ids=["control-character", "nul", "oversized", "invalid-name"],
)
async def test_an_unparseable_header_is_a_json_4xx_that_echoes_nothing(
    api_port: int, headers: list[tuple[Any, bytes]], marker: bytes
) -> None:
    response = await raw_request("127.0.0.1", api_port, "GET", ME, headers)
    assert 400 <= response.status < 500
    assert response.headers["content-type"].startswith("application/json")
    body: Any = response.json()
    assert body["error"]["code"] == "BAD_REQUEST_ERROR"
    assert marker not in response.body


async def test_a_garbage_request_line_is_a_json_400(api_port: int) -> None:
    response = await raw_request("127.0.0.1", api_port, "GET", b"/\x01\x02 nonsense", [])
    assert response.status == 400
    assert response.headers["content-type"].startswith("application/json")


async def test_a_request_id_that_is_not_a_plain_token_is_replaced(api_port: int) -> None:
    response = await raw_request("127.0.0.1", api_port, "GET", "/health", [("X-Request-Id", b"id-\xff")])
    assert response.status == 200
    assert response.headers["x-request-id"].isalnum()
    echoed = await raw_request("127.0.0.1", api_port, "GET", "/health", [("X-Request-Id", "req-123")])
    assert echoed.headers["x-request-id"] == "req-123"
