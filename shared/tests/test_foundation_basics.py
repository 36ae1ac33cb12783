"""Envelope, settings, logging and health: the small contracts every service relies on."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import structlog
from aiohttp.test_utils import TestClient, TestServer

from paystream.errors import PermanentError, SettingsError
from paystream.events import Event, EventType
from paystream.logging import configure_logging
from paystream.settings import CommonSettings, LogSettings
from paystream_devstack.embedded import free_port


def test_envelope_round_trips_and_ids_are_time_ordered() -> None:
    first = Event(
        type=EventType.PAYMENT_CREATED,
        merchant_id="mer_1",
        data={"amount": 100},
        invoice_id="ord_1",
        salon_id="7",
    )
    second = Event(type=EventType.PAYMENT_SUCCESS, merchant_id="mer_1", data={})
    decoded = Event.decode(first.encode())
    assert decoded == first
    assert first.id < second.id, "UUIDv7 ids sort by creation time"
    assert json.loads(first.encode())["occurred_at"].endswith("Z")


@pytest.mark.parametrize(
    "raw",
    [
        b"{",
        b'{"id": "x"}',
        b'{"id":"x","type":"nope","version":1,'
        b'"occurred_at":"2026-01-01T00:00:00Z","merchant_id":"m","data":{}}',
    ],
)
def test_malformed_envelopes_are_permanent_errors(raw: bytes) -> None:
    with pytest.raises(PermanentError):
        Event.decode(raw)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"DATABASE_URL": "postgresql://x/y"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://x"}, "DATABASE_URL"),
        ({"REDIS_URL": "http://x", "DATABASE_URL": "postgresql://x/y"}, "REDIS_URL"),
        ({"REDIS_URL": "redis://x", "DATABASE_URL": "postgresql://x/y", "TEST_MODE": "maybe"}, "TEST_MODE"),
        (
            {"REDIS_URL": "redis://x", "DATABASE_URL": "postgresql://x/y", "TEST_PROCESSING_DELAY": "fast"},
            "TEST_PROCESSING_DELAY",
        ),
        ({"REDIS_URL": "redis://x", "DATABASE_URL": "postgresql://x/y", "LOG_FORMAT": "xml"}, "LOG_FORMAT"),
    ],
)
def test_settings_name_the_missing_or_malformed_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError, match=variable):
        CommonSettings.from_env(environ)


@pytest.mark.parametrize("module", ["paystream_api", "payment_processor"])
def test_a_service_with_a_bad_setting_stops_with_one_line_naming_it(module: str) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env.update({"DATABASE_URL": "postgresql://127.0.0.1/none", "JWT_SECRET": "x"})
    result = subprocess.run(
        [sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "REDIS_URL" in lines[0], result.stderr


def test_logs_redact_secrets_and_card_data(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(LogSettings(format="json"), service="test")
    structlog.get_logger("t").info(
        "payment.created",
        api_secret="secret_test_xyz789",
        cvv="123",
        card_number="4111111111111111",
        amount=100,
    )
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["api_secret"] == line["cvv"] == line["card_number"] == "[redacted]"
    assert line["amount"] == 100 and line["service"] == "test"
    structlog.reset_defaults()


async def test_health_is_503_naming_the_store_that_is_down(database_url: str) -> None:
    from paystream_api.app import create_app
    from paystream_api.settings import ApiSettings

    settings = ApiSettings.from_env(
        {
            "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0",  # nothing listens there
            "DATABASE_URL": database_url,
            "JWT_SECRET": "x",
            "SEED_TEST_DATA": "false",
        }
    )
    async with TestClient(TestServer(create_app(settings))) as client:
        response = await client.get("/health")
        body = await response.json()
    assert response.status == 503
    assert body["database"] == "ok" and body["redis"] == "down"
