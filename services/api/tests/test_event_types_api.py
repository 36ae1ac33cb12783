"""`GET /api/v1/event-types` through the real API app: public, JSON, the whole catalogue, in order,
answered from one encoding."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from paystream.catalogue import EVENT_CATALOGUE
from paystream_api.app import create_app
from paystream_api.settings import ApiSettings
from paystream_api.webhook_api.catalogue import catalogue_body

Client = TestClient[Any, Any]


@pytest.fixture
async def api(service_env: dict[str, str]) -> AsyncIterator[Client]:
    app = create_app(ApiSettings.from_env(service_env))
    async with TestClient(TestServer(app)) as client:
        yield client


async def test_anyone_can_read_every_event_type_with_its_schema_and_sample(api: Client) -> None:
    response = await api.get("/api/v1/event-types")  # no key, no secret, no session
    assert response.status == 200
    assert response.content_type == "application/json"
    assert response.headers["Cache-Control"] == "public, max-age=300"
    body = await response.json()
    assert body["entity"] == "collection"
    assert body["count"] == len(body["data"]) == len(EVENT_CATALOGUE)
    assert [item["name"] for item in body["data"]] == [t.value for t in EVENT_CATALOGUE]
    for item, entry in zip(body["data"], EVENT_CATALOGUE.values(), strict=True):
        assert set(item) == {"entity", "name", "description", "schema", "sample"}
        assert item["entity"] == "event_type"
        assert item["description"] == entry.description
        assert item["schema"] == entry.schema()
        assert item["sample"] == entry.sample()
        assert item["sample"]["event"] == item["name"]


async def test_the_answer_is_encoded_once(api: Client) -> None:
    first = await (await api.get("/api/v1/event-types")).read()
    second = await (await api.get("/api/v1/event-types")).read()
    assert first == second == catalogue_body()
    assert catalogue_body() is catalogue_body()


async def test_credentials_are_not_needed_and_wrong_ones_change_nothing(api: Client) -> None:
    wrong = {"X-Api-Key": "key_test_abc123", "X-Api-Secret": "not-the-secret"}
    response = await api.get("/api/v1/event-types", headers=wrong)
    assert response.status == 200
    assert await response.read() == catalogue_body()
