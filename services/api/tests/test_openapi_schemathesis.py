"""Schemathesis against the real API process: generated requests for every documented operation,
as the seeded test merchant, on real Redis and PostgreSQL. No answer may be a 5xx, and every
answer's status, content type, headers and body must be ones the document gives for that operation.

Each operation gets a bounded number of generated requests: valid ones (by the document) and
invalid ones, then valid ones aimed at real objects (an order, a paid order, a pending and a
successful payment, a refund, a webhook delivery) and a few with known-good parts (the dashboard's
`Origin`, real sign-in credentials, a payable order), so that found-object and success answers are
checked too, not only 404s and 422s. About 400 requests in all, some 15 s. Generation is
derandomized, so `make test` is repeatable; a failure prints the curl line that reproduces it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp
import asyncpg
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from paystream_api.openapi.builders import JsonObject
from paystream_api.openapi.document import build_document
from paystream_api.seed import TEST_API_KEY, TEST_API_SECRET
from paystream_devstack.testing import ServiceProcess

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
POSITIVE_EXAMPLES = 8
NEGATIVE_EXAMPLES = 5
FIXED_EXAMPLES = 4
AUTH = {"X-Api-Key": TEST_API_KEY, "X-Api-Secret": TEST_API_SECRET}
UPI = {"method": "upi", "vpa": "asha@okbank"}
# The failure budgets would turn the run's deliberate bad credentials into 429s for the good ones.
UNTHROTTLED = {
    name: "1000000"
    for name in (
        "AUTH_FAILURES_PER_IP",
        "AUTH_FAILURES_PER_KEY",
        "PUBLIC_PAYMENTS_PER_IP",
        "PUBLIC_PAYMENTS_PER_KEY",
        "PUBLIC_READS_PER_IP",
        "PUBLIC_READS_PER_KEY",
        "DASHBOARD_SIGNIN_FAILURES_PER_IP",
    )
}


@dataclass(frozen=True)
class Seeded:
    """Real objects of the test merchant."""

    order_id: str
    paid_order_id: str
    pending_payment_id: str
    successful_payment_id: str
    refund_id: str
    delivery_id: str


@dataclass(frozen=True)
class FixedRun:
    """Generated requests to one operation with some parts fixed (`as_strategy` keywords)."""

    label: str
    parts: dict[str, Any]


def fixed_runs(seeded: Seeded, api_url: str) -> list[FixedRun]:
    runs = [
        FixedRun(label, {"path_parameters": path_parameters})
        for labels, objects in (
            (
                ("GET /api/v1/orders/{order_id}", "GET /api/v1/public/orders/{order_id}"),
                [{"order_id": seeded.order_id}, {"order_id": seeded.paid_order_id}],
            ),
            (
                (
                    "GET /api/v1/payments/{payment_id}",
                    "GET /api/v1/payments/{payment_id}/events",
                    "GET /api/v1/payments/{payment_id}/refunds",
                    "POST /api/v1/payments/{payment_id}/refunds",
                    "POST /api/v1/payments/{payment_id}/capture",
                    "GET /api/v1/public/payments/{payment_id}",
                ),
                [{"payment_id": seeded.pending_payment_id}, {"payment_id": seeded.successful_payment_id}],
            ),
            (("GET /api/v1/refunds/{refund_id}",), [{"refund_id": seeded.refund_id}]),
            (("POST /api/v1/webhooks/{id}/retry",), [{"id": seeded.delivery_id}]),
        )
        for label in labels
        for path_parameters in objects
    ]
    origin = {"Origin": api_url}
    runs += [
        FixedRun("POST /dashboard/session", {"headers": origin}),
        FixedRun(
            "POST /dashboard/session",
            {"headers": origin, "body": {"key": TEST_API_KEY, "secret": TEST_API_SECRET}},
        ),
        FixedRun("POST /api/v1/public/payments", {"body": {"order_id": seeded.order_id, **UPI}}),
        FixedRun("POST /api/v1/payments", {"body": {"order_id": "ref-1", "amount": 100, **UPI}}),
        FixedRun(
            "PUT /api/v1/webhooks/config", {"body": {"url": "http://127.0.0.1:9/hooks", "enabled": False}}
        ),
    ]
    return runs


@pytest.fixture
def api_url(service_env: dict[str, str], spawn_service: Callable[..., ServiceProcess]) -> str:
    spawn_service("paystream_api", service_env, **UNTHROTTLED)
    return f"http://127.0.0.1:{service_env['API_PORT']}"


async def _answer(response: aiohttp.ClientResponse) -> dict[str, Any]:
    assert response.status in (200, 201, 202), await response.text()
    body: dict[str, Any] = await response.json()
    return body


@pytest.fixture
async def seeded(api_url: str, db_pool: asyncpg.Pool) -> Seeded:
    async with aiohttp.ClientSession(api_url, headers=AUTH) as http:

        async def send(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            async with http.request(method, path, json=body) as response:
                return await _answer(response)

        order = await send("POST", "/api/v1/orders", {"amount": 50000, "receipt": "schemathesis"})
        paid_order = await send("POST", "/api/v1/orders", {"amount": 1000})
        pending = await send("POST", "/api/v1/payments", {"order_id": order["id"], "amount": 50000, **UPI})
        successful = await send(
            "POST", "/api/v1/payments", {"order_id": paid_order["id"], "amount": 1000, **UPI}
        )
        # What the payment processor does when it settles a payment (it is not running here).
        await db_pool.execute(
            "UPDATE payments SET status = 'success', settled_at = now() WHERE id = $1", successful["id"]
        )
        await db_pool.execute(
            "UPDATE orders SET status = 'paid', amount_paid = amount WHERE id = $1", paid_order["id"]
        )
        refund = await send("POST", f"/api/v1/payments/{successful['id']}/refunds", {"amount": 100})
        await send("PUT", "/api/v1/webhooks/config", {"url": "http://127.0.0.1:9/hooks", "events": ["*"]})
        delivery = await send("POST", "/api/v1/webhooks/test")
    return Seeded(
        order["id"], paid_order["id"], pending["id"], successful["id"], refund["id"], delivery["id"]
    )


def load_schema(document: JsonObject, api_url: str) -> schemathesis.BaseSchema:
    config = schemathesis.Config.from_dict(
        {
            "base-url": api_url,
            "auth": {
                "auto-signup": False,
                "openapi": {
                    "ApiKey": {"api_key": TEST_API_KEY},
                    "ApiSecret": {"api_key": TEST_API_SECRET},
                    "PublicKey": {"api_key": TEST_API_KEY},
                },
            },
        }
    )
    return schemathesis.openapi.from_dict(document, config=config)


@dataclass
class Run:
    """Requests sent and failures found, across operations."""

    session: requests.Session
    sent: int = 0
    failures: list[str] | None = None

    def operation(self, operation: Any, mode: GenerationMode, examples: int, **parts: Any) -> None:
        """Up to `examples` generated requests to `operation`; a failure is kept with its curl line."""

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
            report_multiple_bugs=False,
        )
        @given(case=operation.as_strategy(generation_mode=mode, **parts))
        def send(case: Case) -> None:
            self.sent += 1
            case.call_and_validate(session=self.session, checks=CHECKS, timeout=10)

        try:
            send()
        except Unsatisfiable:
            pass  # negative mode, and nothing in the operation can be made invalid
        except (Exception, FailureGroup) as exc:
            fixed = f" with {sorted(parts)} fixed" if parts else ""
            self.failures = [*(self.failures or []), f"{operation.label} [{mode.value}{fixed}]: {exc}"]


def test_generated_requests_get_documented_answers(api_url: str, seeded: Seeded) -> None:
    schema = load_schema(build_document(), api_url)
    operations = {result.ok().label: result.ok() for result in schema.get_all_operations()}
    runs = fixed_runs(seeded, api_url)
    assert {run.label for run in runs} <= set(operations)
    started = time.monotonic()
    with requests.Session() as session:
        run = Run(session)
        for operation in operations.values():
            run.operation(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES)
            run.operation(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES)
        for fixed in runs:
            run.operation(operations[fixed.label], GenerationMode.POSITIVE, FIXED_EXAMPLES, **fixed.parts)
    elapsed = time.monotonic() - started
    failures = run.failures or []
    assert not failures, f"{len(failures)} runs got answers the document does not give:\n\n" + "\n\n".join(
        failures
    )
    assert run.sent >= 300, f"only {run.sent} requests were sent"
    assert elapsed < 150, f"{run.sent} requests took {elapsed:.0f} s"


def test_the_run_fails_on_an_undocumented_status_and_a_body_unlike_its_schema(api_url: str) -> None:
    """The same run against a document that is wrong twice: GET /health's 200 is missing, and the
    merchant is said to have a `phone`. Each must be reported, or the checks above prove nothing."""
    document = build_document()
    document["paths"]["/health"]["get"]["responses"].pop("200")
    merchant = document["components"]["schemas"]["Merchant"]
    merchant["properties"]["phone"] = {"type": "string"}
    merchant["required"].append("phone")
    schema = load_schema(document, api_url)
    with requests.Session() as session:
        run = Run(session)
        run.operation(schema["/health"]["GET"], GenerationMode.POSITIVE, 1)
        run.operation(schema["/api/v1/merchants/me"]["GET"], GenerationMode.POSITIVE, 1)
    failures = run.failures or []
    assert len(failures) == 2, failures
    assert failures[0].startswith("GET /health") and "Undocumented status code" in failures[0]
    assert failures[1].startswith("GET /api/v1/merchants/me") and "Response violates schema" in failures[1]
    assert "phone" in failures[1]
