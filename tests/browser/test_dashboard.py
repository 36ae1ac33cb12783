"""The merchant dashboard in Chromium, against the real platform: sign-in, live payments, the
payment page's refunds, webhooks (set, test, retry), streams, docs (with the webhook event
catalogue), sign-out and the sign-in throttle; a screenshot of every page, desktop and phone."""

from __future__ import annotations

import importlib.util
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from browserkit import PHONE, PageFactory
from playwright.async_api import Page, expect

from paystream.catalogue import EVENT_CATALOGUE
from paystream.events import EventType
from paystream_devstack.embedded import free_port
from paystream_devstack.testing.platform import Platform
from paystream_devstack.testing.polling import eventually

KEY = "key_test_abc123"
SECRET = "secret_test_xyz789"
WEBHOOK_SECRET = "whsec_test_abc123"
AUTH = {"X-Api-Key": KEY, "X-Api-Secret": SECRET}
SNIPPETS = Path(__file__).resolve().parents[2] / "services/api/src/paystream_api/frontend/dashboard/snippets"
Screenshot = Callable[[Page, str], Awaitable[Path]]


def load_verifier() -> ModuleType:
    """The README's Python verification snippet, as the dashboard serves it."""
    spec = importlib.util.spec_from_file_location("verify_webhook", SNIPPETS / "verify_webhook.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass
class Receiver:
    """A merchant's webhook endpoint on a loopback port; answers `status` and checks signatures."""

    url: str = ""
    status: int = 500
    received: list[dict[str, Any]] = field(default_factory=list)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    verifier = load_verifier()
    state = Receiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        state.received.append(
            {
                "id": request.headers.get("webhook-id"),
                "verified": verifier.verify_standard([WEBHOOK_SECRET], body, request.headers)
                and verifier.verify_legacy([WEBHOOK_SECRET], body, request.headers),
            }
        )
        return web.Response(status=state.status, text="ok" if state.status < 300 else "receiver is down")

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.url = f"http://127.0.0.1:{port}/hook"
    yield state
    await runner.cleanup()


@pytest.fixture
async def rest(platform: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    """The merchant's own server calling the REST API with its key and secret."""
    async with aiohttp.ClientSession(base_url=platform.api_url, headers=AUTH) as session:
        yield session


async def create_payment(rest: aiohttp.ClientSession, order_id: str, amount: int = 50_000) -> str:
    response = await rest.post(
        "/api/v1/payments",
        json={
            "order_id": order_id,
            "amount": amount,
            "currency": "INR",
            "method": "upi",
            "vpa": "asha@okbank",
        },
    )
    assert response.status == 201, await response.text()
    payment_id: str = (await response.json())["id"]
    return payment_id


async def settled_payment(rest: aiohttp.ClientSession, order_id: str, amount: int = 50_000) -> str:
    payment_id = await create_payment(rest, order_id, amount)

    async def succeeded() -> bool:
        payment = await (await rest.get(f"/api/v1/payments/{payment_id}")).json()
        return bool(payment["status"] == "success")

    await eventually(succeeded, timeout=20)
    return payment_id


def tid(page: Page, test_id: str) -> Any:
    return page.locator(f'[data-test-id="{test_id}"]')


async def sign_in(page: Page, platform: Platform, path: str = "/dashboard") -> None:
    await page.goto(platform.api_url + path)
    await tid(page, "key-input").fill(KEY)
    await tid(page, "secret-input").fill(SECRET)
    await tid(page, "login-button").click()
    await expect(tid(page, "logout-button")).to_be_visible()


async def capture(screenshot: Screenshot, page: Page, name: str) -> None:
    """A full-page screenshot from the top (the fixed sidebar is drawn where the viewport is)."""
    await page.evaluate("window.scrollTo(0, 0)")
    await screenshot(page, name)


async def live(page: Page) -> None:
    await expect(tid(page, "live-status")).to_have_attribute("data-state", "connected", timeout=15_000)


async def test_sign_in_refuses_a_wrong_secret_then_opens_the_payments_page(
    platform: Platform, open_page: PageFactory, screenshot: Screenshot
) -> None:
    page, watch = await open_page()
    watch.expect_failure(r"401")  # the wrong secret's answer, shown to the merchant
    await page.goto(platform.api_url + "/dashboard")
    await expect(tid(page, "login-form")).to_be_visible()
    await capture(screenshot, page, "dashboard-signin-desktop")
    await tid(page, "key-input").fill(KEY)
    await tid(page, "secret-input").fill("not-the-secret")
    await tid(page, "login-button").click()
    await expect(tid(page, "login-error")).to_contain_text("do not match")
    await expect(tid(page, "payments-table")).to_have_count(0)
    await tid(page, "secret-input").fill(SECRET)
    await tid(page, "login-button").click()
    await expect(tid(page, "payments-table")).to_be_visible()
    await expect(page.locator(".merchant-name")).to_have_text("Test Merchant")
    cookies = await page.context.cookies()
    session = next(cookie for cookie in cookies if cookie["name"] == "paystream_session")
    assert session["httpOnly"] is True
    assert session["sameSite"] == "Strict"


async def test_a_payment_created_over_rest_appears_and_settles_live_without_a_reload(
    platform: Platform, open_page: PageFactory, rest: aiohttp.ClientSession, screenshot: Screenshot
) -> None:
    page, _watch = await open_page()
    await sign_in(page, platform)
    await live(page)
    await page.evaluate("window.__sameDocument = true")
    # With the processor stopped the payment stays pending, so the page must show that first.
    platform.processes["payment_processor"].stop()
    payment_id = await create_payment(rest, "order_browser_live")
    row = tid(page, f"payment-row-{payment_id}")
    status = tid(page, f"payment-status-{payment_id}")
    await expect(row).to_be_visible(timeout=15_000)
    await expect(status).to_have_text("pending")
    platform.restart("payment_processor")
    await expect(status).to_have_text("success", timeout=20_000)
    assert await page.evaluate("window.__sameDocument === true"), "the page reloaded"
    await expect(tid(page, "success-rate")).to_have_text("100%")  # the totals follow too
    await capture(screenshot, page, "dashboard-payments-desktop")


async def test_a_refund_from_the_payment_page_and_the_apis_error_when_the_amount_is_too_high(
    platform: Platform, open_page: PageFactory, rest: aiohttp.ClientSession, screenshot: Screenshot
) -> None:
    payment_id = await settled_payment(rest, "order_browser_refund", amount=50_000)
    page, watch = await open_page()
    watch.expect_failure(r"400")  # the too-high refund: the API's answer is what the page shows
    await sign_in(page, platform, f"/dashboard/payments/{payment_id}")
    await expect(tid(page, "payment-status")).to_have_text("success")
    await expect(tid(page, "timeline-event-payment.success")).to_be_visible()
    await expect(tid(page, "refund-amount-input")).to_have_value("500.00")
    await tid(page, "refund-amount-input").fill("120.50")
    await tid(page, "refund-reason-input").fill("Damaged in transit")
    await tid(page, "refund-button").click()
    refunds = tid(page, "refunds-table").locator("tbody tr[data-test-id^='refund-row-']")
    await expect(refunds).to_have_count(1)
    await expect(refunds.first).to_contain_text("₹120.50")
    await expect(tid(page, "payment-refunded")).to_have_text("₹120.50")
    await tid(page, "refund-amount-input").fill("400.00")
    await tid(page, "refund-button").click()
    await expect(tid(page, "refund-error")).to_contain_text("exceeds the refundable amount (37950)")
    await expect(tid(page, "refund-error")).to_contain_text("At most ₹379.50")
    await expect(refunds).to_have_count(1)
    listed = await (await rest.get(f"/api/v1/payments/{payment_id}/refunds")).json()
    assert [refund["amount"] for refund in listed["data"]] == [12_050]
    await expect(tid(page, "timeline-event-refund.created")).to_be_visible()
    await capture(screenshot, page, "dashboard-payment-desktop")


async def test_webhooks_the_default_endpoint_sends_a_test_see_the_log_and_retry_a_failed_delivery(
    platform: Platform,
    open_page: PageFactory,
    rest: aiohttp.ClientSession,
    receiver: Receiver,
    screenshot: Screenshot,
) -> None:
    configured = await rest.put("/api/v1/webhooks/config", json={"url": receiver.url})
    assert configured.status == 200, await configured.text()
    page, _watch = await open_page()
    await sign_in(page, platform, "/dashboard/webhooks")
    endpoint_row = tid(page, "endpoints-table").locator("tr[data-test-id^='endpoint-row-']")
    await expect(endpoint_row).to_have_count(1)
    await expect(endpoint_row).to_contain_text("Default")
    await endpoint_row.click()
    await expect(tid(page, "endpoint-url")).to_have_text(receiver.url)
    receiver.status = 500
    await tid(page, "send-test-button").click()
    await eventually(lambda: len(receiver.received) >= 1, timeout=15)
    delivery_id = receiver.received[0]["id"]
    assert receiver.received[0]["verified"], "the README's snippet must verify a real delivery"
    row = tid(page, f"webhook-log-{delivery_id}")
    attempts = tid(page, f"webhook-attempts-{delivery_id}")
    await expect(row).to_be_visible()
    await expect(attempts).to_have_text("1")
    await expect(row).to_contain_text("HTTP 500")
    await tid(page, f"retry-webhook-{delivery_id}").click()
    await expect(attempts).to_have_text("2", timeout=15_000)
    assert [item["id"] for item in receiver.received[:2]] == [delivery_id, delivery_id]
    receiver.status = 200
    await tid(page, f"retry-webhook-{delivery_id}").click()
    await expect(tid(page, f"webhook-status-{delivery_id}")).to_have_text("success", timeout=15_000)
    await tid(page, "reveal-secret-button").click()
    await expect(tid(page, "webhook-secret")).to_have_text(WEBHOOK_SECRET)
    await tid(page, "reveal-secret-button").click()
    await capture(screenshot, page, "dashboard-webhooks-desktop")


async def test_the_streams_page_shows_each_group_and_refreshes(
    platform: Platform, open_page: PageFactory, screenshot: Screenshot
) -> None:
    page, _watch = await open_page()
    await sign_in(page, platform, "/dashboard/streams")
    group = tid(page, "stream-group-payment:events-payment-processor")
    await expect(group).to_be_visible(timeout=15_000)
    await expect(tid(page, "dead-letters-payment:events")).to_have_text("0")
    first = await tid(page, "streams-updated").text_content()
    await expect(tid(page, "streams-updated")).not_to_have_text(first or "", timeout=10_000)
    await capture(screenshot, page, "dashboard-streams-desktop")


async def test_the_docs_page_fills_in_the_key_and_shows_the_readmes_snippets(
    platform: Platform, open_page: PageFactory, screenshot: Screenshot
) -> None:
    page, _watch = await open_page()
    await sign_in(page, platform, "/dashboard/docs")
    await expect(tid(page, "docs-api-key")).to_have_text(KEY)
    await expect(tid(page, "docs-curl-1")).to_contain_text(f"X-Api-Key: {KEY}")
    await expect(tid(page, "docs-sdk")).to_contain_text("new PaymentGateway")
    snippet = tid(page, "docs-snippet")
    await expect(snippet).to_contain_text("def verify_standard")
    assert await snippet.text_content() == (SNIPPETS / "verify_webhook.py").read_text()
    await tid(page, "snippet-node").click()
    await expect(snippet).to_contain_text("function verifyStandard")
    assert await snippet.text_content() == (SNIPPETS / "verify_webhook.js").read_text()
    await tid(page, "snippet-python").click()
    await capture(screenshot, page, "dashboard-docs-desktop")


async def test_the_docs_page_shows_every_webhook_event_with_its_fields_sample_and_schema(
    platform: Platform, open_page: PageFactory, screenshot: Screenshot
) -> None:
    page, _watch = await open_page()
    await sign_in(page, platform, "/dashboard/docs")
    events = tid(page, "docs-events")
    for entry in EVENT_CATALOGUE.values():
        summary = tid(page, f"event-type-{entry.name}").locator("summary")
        await expect(summary).to_be_visible()
        await expect(summary).to_contain_text(entry.name)
        await expect(summary).to_contain_text(entry.description.replace("`", ""))  # `x` is shown as code
    await expect(events.locator("details.event-type")).to_have_count(len(EVENT_CATALOGUE))
    await expect(tid(page, "docs-events-curl")).to_have_text(f"curl -s {platform.api_url}/api/v1/event-types")

    success = EVENT_CATALOGUE[EventType.PAYMENT_SUCCESS]
    await tid(page, "event-type-payment.success").locator("summary").click()
    sample = tid(page, "event-sample-payment.success")
    await expect(sample).to_be_visible()
    assert json.loads(await sample.text_content() or "") == success.sample()
    fields = tid(page, "event-fields-payment.success-data.payment")
    await expect(fields).to_contain_text("refund_status")
    await expect(fields).to_contain_text('Always "success".')
    await tid(page, "event-variant-payment.success-1").click()  # the shape providers' payments have
    await expect(fields).to_contain_text("provider_status")
    await expect(fields).not_to_contain_text("refund_status")
    await tid(page, "event-schema-toggle-payment.success").click()
    schema = tid(page, "event-schema-payment.success")
    await expect(schema).to_be_visible()
    assert json.loads(await schema.text_content() or "") == success.schema()
    await tid(page, "event-variant-payment.success-0").click()
    await tid(page, "event-schema-toggle-payment.success").click()
    # An event whose data holds plain fields rather than objects.
    await tid(page, "event-type-webhook.test").locator("summary").click()
    await expect(tid(page, "event-fields-webhook.test-data")).to_contain_text("merchant_id")
    await capture(screenshot, page, "dashboard-docs-events-desktop")
    await page.evaluate("document.getElementById('event-payment.success').scrollIntoView()")
    await page.evaluate("window.scrollBy(0, -140)")
    await screenshot(page, "dashboard-docs-events-viewport", full_page=False)

    phone, _phone_watch = await open_page(viewport=PHONE)
    await sign_in(phone, platform, "/dashboard/docs#event-refund.processed")
    await expect(tid(phone, "event-sample-refund.processed")).to_be_visible()
    width = await phone.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"the events scroll sideways on a phone ({width}px)"
    await phone.evaluate("document.getElementById('event-refund.processed').scrollIntoView()")
    await phone.evaluate("window.scrollBy(0, -110)")  # below the sticky navigation
    await screenshot(phone, "dashboard-docs-events-phone", full_page=False)


async def test_every_page_works_on_a_phone(
    platform: Platform, open_page: PageFactory, rest: aiohttp.ClientSession, screenshot: Screenshot
) -> None:
    payment_id = await settled_payment(rest, "order_browser_phone", amount=25_000)
    page, _watch = await open_page(viewport=PHONE)
    await page.goto(platform.api_url + "/dashboard")
    await expect(tid(page, "login-form")).to_be_visible()
    await capture(screenshot, page, "dashboard-signin-phone")
    await sign_in(page, platform)
    pages = {
        "payments": ("/dashboard", f"payment-row-{payment_id}"),
        "payment": (f"/dashboard/payments/{payment_id}", "refund-form"),
        "webhooks": ("/dashboard/webhooks", "webhook-logs-table"),
        "streams": ("/dashboard/streams", "stream-group-payment:events-payment-processor"),
        "docs": ("/dashboard/docs", "docs-curl-1"),
    }
    for name, (path, ready) in pages.items():
        await page.goto(platform.api_url + path)
        await expect(tid(page, ready)).to_be_visible(timeout=15_000)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name} scrolls sideways on a phone ({width}px)"
        await capture(screenshot, page, f"dashboard-{name}-phone")


async def test_sign_out_revokes_the_session_so_the_old_cookie_gets_401(
    platform: Platform, open_page: PageFactory
) -> None:
    page, _watch = await open_page()
    await sign_in(page, platform)
    cookie = next(c for c in await page.context.cookies() if c["name"] == "paystream_session")
    await tid(page, "logout-button").click()
    await expect(tid(page, "login-form")).to_be_visible()
    assert not [c for c in await page.context.cookies() if c["name"] == "paystream_session"]
    async with aiohttp.ClientSession(base_url=platform.api_url) as client:
        replayed = await client.get(
            "/api/v1/payments", headers={"Cookie": f"paystream_session={cookie['value']}"}
        )
        assert replayed.status == 401
        assert (await replayed.json())["error"]["code"] == "SESSION_EXPIRED"


async def test_a_sign_out_that_does_not_reach_the_server_says_so_and_stays_signed_in(
    platform: Platform, open_page: PageFactory, screenshot: Screenshot
) -> None:
    page, watch = await open_page()
    watch.expect_failure(r"ERR_INTERNET_DISCONNECTED|Failed to fetch|WebSocket|/dashboard/session")
    await sign_in(page, platform)
    await expect(page.locator(".merchant-name")).to_have_text("Test Merchant")  # the shell is up
    await page.context.set_offline(True)
    await tid(page, "logout-button").click()
    await expect(page.locator(".toast.error")).to_contain_text("Sign-out failed")
    await expect(tid(page, "logout-button")).to_be_enabled()
    await expect(tid(page, "login-form")).to_have_count(0)
    await capture(screenshot, page, "dashboard-sign-out-failed")
    await page.context.set_offline(False)
    await tid(page, "logout-button").click()
    await expect(tid(page, "login-form")).to_be_visible()


async def test_the_sixth_failed_sign_in_from_one_address_is_429(
    platform: Platform, open_page: PageFactory
) -> None:
    platform.restart("paystream_api")  # a fresh failure budget: earlier tests failed sign-ins too
    page, watch = await open_page()
    watch.expect_failure(r"401|429")
    await page.goto(platform.api_url + "/dashboard")
    statuses = []
    for _ in range(6):
        async with page.expect_response(lambda r: r.url.endswith("/dashboard/session")) as answer:
            await tid(page, "key-input").fill(KEY)
            await tid(page, "secret-input").fill("wrong-secret")
            await tid(page, "login-button").click()
        statuses.append((await answer.value).status)
        await expect(tid(page, "login-button")).to_be_enabled()
    assert statuses == [401] * 5 + [429]
    await expect(tid(page, "login-error")).to_contain_text("Too many failed sign-ins")
