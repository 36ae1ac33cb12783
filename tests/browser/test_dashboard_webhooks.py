"""The dashboard's webhook endpoints in Chromium, against the real platform (API and dispatcher
processes delivering to a loopback receiver): the list, the add form with the API's refusals shown
at their fields, editing a filter, disabling and enabling, deleting, rotating the secret, a test
send in the endpoint's own log, the banner of an endpoint the dispatcher disabled, and recovering
its failed deliveries; screenshots desktop and phone."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from browserkit import PHONE, PageFactory
from playwright.async_api import Page, expect

from paystream_devstack.embedded import free_port
from paystream_devstack.testing.platform import DISPATCHER, Platform
from paystream_devstack.testing.polling import eventually

KEY = "key_test_abc123"
SECRET = "secret_test_xyz789"
AUTH = {"X-Api-Key": KEY, "X-Api-Secret": SECRET}
ENDPOINTS = "/api/v1/webhook-endpoints"
# Short enough to watch the dispatcher disable an endpoint: its second failed attempt (the test
# retry schedule's 5 s later) comes after the whole window.
AUTO_DISABLE_AFTER_S = "2"
Screenshot = Callable[[Page, str], Awaitable[Path]]


@dataclass
class Received:
    path: str
    webhook_id: str
    event: str
    headers: dict[str, str]
    body: bytes
    data: dict[str, Any]

    def signed_with(self, secret: str) -> bool:
        expected = hmac.new(secret.encode(), self.body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, self.headers.get("X-Webhook-Signature", ""))


@dataclass
class Receiver:
    """The merchant's servers on a loopback port: `/<name>` answers `status[name]` (200 unless set)."""

    base: str = ""
    status: dict[str, int] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def at(self, name: str, event: str | None = None) -> list[Received]:
        return [r for r in self.received if r.path == name and (event is None or r.event == event)]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def hook(request: web.Request) -> web.Response:
        body = await request.read()
        name = request.match_info["name"]
        payload = orjson.loads(body)
        state.received.append(
            Received(
                path=name,
                webhook_id=request.headers.get("webhook-id", ""),
                event=payload["event"],
                headers=dict(request.headers),
                body=body,
                data=payload["data"],
            )
        )
        status = state.status.get(name, 200)
        return web.Response(status=status, text="ok" if status < 300 else "receiver is down")

    app = web.Application()
    app.router.add_post("/{name:.+}", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    state.base = f"http://127.0.0.1:{port}"
    yield state
    await runner.cleanup()


@pytest.fixture
async def rest(platform: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    """The merchant's own server on the REST API; every test starts with no endpoint."""
    async with aiohttp.ClientSession(base_url=platform.api_url, headers=AUTH) as session:
        listed = await (await session.get(ENDPOINTS)).json()
        for endpoint in listed["data"]:
            response = await session.delete(f"{ENDPOINTS}/{endpoint['id']}")
            assert response.status == 200, await response.text()
        yield session


async def create_endpoint(rest: aiohttp.ClientSession, **fields: Any) -> dict[str, Any]:
    response = await rest.post(ENDPOINTS, json=fields)
    assert response.status == 201, await response.text()
    created: dict[str, Any] = await response.json()
    return created


async def fetch_endpoint(rest: aiohttp.ClientSession, endpoint_id: str) -> dict[str, Any]:
    response = await rest.get(f"{ENDPOINTS}/{endpoint_id}")
    assert response.status == 200, await response.text()
    endpoint: dict[str, Any] = await response.json()
    return endpoint


async def send_test(rest: aiohttp.ClientSession, endpoint_id: str) -> str:
    response = await rest.post(f"{ENDPOINTS}/{endpoint_id}/test")
    assert response.status == 202, await response.text()
    delivery_id: str = (await response.json())["id"]
    return delivery_id


def tid(page: Page, test_id: str) -> Any:
    return page.locator(f'[data-test-id="{test_id}"]')


async def sign_in(page: Page, platform: Platform, path: str) -> None:
    await page.goto(platform.api_url + path)
    await tid(page, "key-input").fill(KEY)
    await tid(page, "secret-input").fill(SECRET)
    await tid(page, "login-button").click()
    await expect(tid(page, "logout-button")).to_be_visible()


async def capture(screenshot: Screenshot, page: Page, name: str) -> None:
    """A full-page screenshot from the top, once the toasts are gone (they would cover the page)."""
    await expect(page.locator(".toast")).to_have_count(0, timeout=10_000)
    await page.evaluate("window.scrollTo(0, 0)")
    await screenshot(page, name)


async def no_sideways_scroll(page: Page, what: str) -> None:
    width = await page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"{what} scrolls sideways on a phone ({width}px)"


async def test_add_an_endpoint_with_the_apis_refusals_at_their_fields_then_edit_its_filter(
    platform: Platform,
    open_page: PageFactory,
    rest: aiohttp.ClientSession,
    receiver: Receiver,
    screenshot: Screenshot,
) -> None:
    page, watch = await open_page()
    watch.expect_failure(r"422")  # the API's refusals, which the form shows
    await sign_in(page, platform, "/dashboard/webhooks")
    await expect(tid(page, "endpoints-table")).to_contain_text("No endpoints yet")
    await capture(screenshot, page, "dashboard-webhooks-empty-desktop")

    await tid(page, "add-endpoint-button").click()
    form = tid(page, "endpoint-form")
    await tid(form, "endpoint-url-input").fill("http://169.254.169.254/latest/meta-data")
    await tid(form, "endpoint-description-input").fill("Accounting")
    await tid(form, "endpoint-events-some").check()
    await tid(form, "endpoint-event-payment.*").check()
    await expect(tid(form, "endpoint-event-payment.success")).to_be_hidden()  # families open on demand
    await tid(form, "endpoint-group-toggle-payment").click()
    # A wildcard covers what is under it: shown checked, fixed.
    await expect(tid(form, "endpoint-event-payment.success")).to_be_checked()
    await expect(tid(form, "endpoint-event-payment.success")).to_be_disabled()
    await expect(tid(form, "endpoint-event-payment.dispute.*")).to_be_disabled()
    await tid(form, "endpoint-group-toggle-refund").click()
    await tid(form, "endpoint-event-refund.processed").check()
    await expect(tid(form, "endpoint-filter-preview")).to_have_text(
        'Filter: ["payment.*","refund.processed"]'
    )
    for name, value in (("X-Tenant", "salon-7"), ("Content-Type", "text/plain")):
        await tid(form, "endpoint-add-header-button").click()
        await tid(form, "endpoint-header-name").last.fill(name)
        await tid(form, "endpoint-header-value").last.fill(value)
    await tid(form, "endpoint-rate-limit-input").fill("5")

    await tid(form, "endpoint-save-button").click()
    url_error = form.locator('[data-field="url"] [data-test-id="endpoint-url-error"]')
    await expect(url_error).to_contain_text("url is not allowed")
    await expect(tid(form, "endpoint-url-input")).to_have_attribute("aria-invalid", "true")
    await tid(form, "endpoint-url-input").fill(receiver.url("accounting"))
    await tid(form, "endpoint-save-button").click()
    headers_error = form.locator('[data-field="headers"] [data-test-id="endpoint-headers-error"]')
    await expect(headers_error).to_have_text(
        "the Content-Type header is set by Paystream and cannot be custom"
    )
    await expect(url_error).to_be_hidden()
    await expect(tid(form, "endpoint-header-name").last).to_have_class("input mono invalid")
    await expect(tid(form, "endpoint-header-name").first).not_to_have_class("input mono invalid")
    await capture(screenshot, page, "dashboard-webhooks-add-error-desktop")
    assert (await (await rest.get(ENDPOINTS)).json())["total"] == 0  # refused: nothing stored

    await tid(form, "endpoint-remove-header-button").last.click()
    await tid(form, "endpoint-save-button").click()
    await expect(tid(page, "add-endpoint-card")).to_be_hidden()
    listed = (await (await rest.get(ENDPOINTS)).json())["data"]
    assert len(listed) == 1
    endpoint = listed[0]
    assert endpoint["url"] == receiver.url("accounting")
    assert endpoint["description"] == "Accounting"
    assert endpoint["events"] == ["payment.*", "refund.processed"]
    assert endpoint["headers"] == {"X-Tenant": "salon-7"}
    assert (endpoint["rate_limit_per_s"], endpoint["enabled"], endpoint["is_default"]) == (5, True, False)
    row = tid(page, f"endpoint-row-{endpoint['id']}")
    await expect(row).to_contain_text("Accounting")
    await expect(tid(page, f"endpoint-events-{endpoint['id']}")).to_have_text("payment.*refund.processed")
    await expect(tid(page, f"endpoint-state-{endpoint['id']}")).to_have_text("enabled")
    await expect(row).to_contain_text("5 / s")

    await row.click()
    await page.wait_for_url(f"**/dashboard/webhooks/{endpoint['id']}")
    await expect(tid(page, "endpoint-url")).to_have_text(receiver.url("accounting"))
    form = tid(page, "endpoint-form")
    await expect(tid(form, "endpoint-event-payment.*")).to_be_checked()
    await expect(tid(form, "endpoint-event-refund.processed")).to_be_visible()  # a choice inside: open
    await expect(tid(form, "endpoint-event-payment.success")).to_be_hidden()
    await expect(tid(form, "endpoint-header-value")).to_have_value("salon-7")
    await tid(form, "endpoint-event-payment.*").uncheck()
    await tid(form, "endpoint-group-toggle-payment").click()
    # Unchecking the wildcard gives back what was under it, unchecked as it was.
    await expect(tid(form, "endpoint-event-payment.success")).to_be_enabled()
    await expect(tid(form, "endpoint-event-payment.success")).not_to_be_checked()
    await tid(form, "endpoint-event-payment.success").check()
    await tid(form, "endpoint-event-payment.dispute.*").check()
    await tid(form, "endpoint-save-button").click()
    await expect(tid(form, "endpoint-form-message")).to_have_text("Changes saved.")
    edited = await fetch_endpoint(rest, endpoint["id"])
    assert edited["events"] == ["payment.success", "payment.dispute.*", "refund.processed"]
    assert (edited["headers"], edited["rate_limit_per_s"]) == ({"X-Tenant": "salon-7"}, 5)
    await tid(form, "endpoint-rate-limit-input").fill("2.5")
    await tid(form, "endpoint-save-button").click()  # the API's refusal of a PATCH, at its field
    await expect(tid(form, "endpoint-rate_limit_per_s-error")).to_contain_text(
        "rate_limit_per_s must be null or an integer from 1 to 10000"
    )
    assert (await fetch_endpoint(rest, endpoint["id"]))["rate_limit_per_s"] == 5


async def test_disable_enable_rotate_delete_and_a_test_send_in_the_endpoints_own_log(
    platform: Platform,
    open_page: PageFactory,
    rest: aiohttp.ClientSession,
    receiver: Receiver,
    screenshot: Screenshot,
) -> None:
    endpoint = await create_endpoint(
        rest,
        url=receiver.url("orders"),
        description="Order system",
        events=["payment.*", "refund.*"],
        headers={"X-Tenant": "salon-7"},
        rate_limit_per_s=10,
    )
    other = await create_endpoint(rest, url=receiver.url("analytics"), description="Analytics")
    others_delivery = await send_test(rest, other["id"])
    await eventually(
        lambda: receiver.at("analytics"), timeout=15, message="no delivery to the other endpoint"
    )

    page, watch = await open_page(permissions=["clipboard-read", "clipboard-write"])
    await sign_in(page, platform, f"/dashboard/webhooks/{endpoint['id']}")
    await expect(tid(page, "endpoint-url")).to_have_text(receiver.url("orders"))
    badge = tid(page, "endpoint-badges").locator(".badge").first

    await tid(page, "toggle-enabled-button").click()
    await tid(page, "disable-confirm-button").click()
    await expect(badge).to_have_text("disabled")
    await expect(tid(page, "disabled-note")).to_contain_text("You disabled this endpoint")
    await expect(tid(page, "auto-disabled-banner")).to_have_count(0)
    await expect(tid(page, "send-test-button")).to_be_disabled()
    await expect(tid(page, "recover-button")).to_be_disabled()
    stored = await fetch_endpoint(rest, endpoint["id"])
    assert (stored["enabled"], stored["disabled_reason"]) == (False, "disabled by the merchant")
    await tid(page, "toggle-enabled-button").click()
    await expect(badge).to_have_text("enabled")
    await expect(tid(page, "disabled-note")).to_have_count(0)
    assert (await fetch_endpoint(rest, endpoint["id"]))["enabled"] is True

    await tid(page, "rotate-secret-button").click()
    await tid(page, "rotate-confirm-button").click()
    await expect(tid(page, "new-secret-box")).to_be_visible()
    shown = await tid(page, "new-secret").text_content()
    rotated = await fetch_endpoint(rest, endpoint["id"])
    assert shown == rotated["secret"] != endpoint["secret"]
    assert shown.startswith("whsec_")
    await expect(tid(page, "previous-secret-note")).to_contain_text("The previous secret also signs")
    await expect(tid(page, "webhook-secret")).not_to_contain_text(shown)
    await tid(page, "copy-new-secret-button").click()
    await expect(tid(page, "copy-new-secret-button")).to_have_text("Copied")
    assert await page.evaluate("navigator.clipboard.readText()") == shown
    assert shown not in page.url

    await tid(page, "send-test-button").click()
    await eventually(lambda: receiver.at("orders"), timeout=15, message="no test delivery")
    delivered = receiver.at("orders")[0]
    assert delivered.event == "webhook.test"
    assert delivered.headers.get("X-Tenant") == "salon-7"
    assert delivered.signed_with(shown), "signed with the new secret"
    await expect(tid(page, f"webhook-status-{delivered.webhook_id}")).to_have_text("success", timeout=15_000)
    log_rows = tid(page, "webhook-logs-table").locator("tbody tr[data-test-id^='webhook-log-']")
    await expect(log_rows).to_have_count(1)  # this endpoint's delivery only, not the other's
    await expect(tid(page, f"webhook-log-{others_delivery}")).to_have_count(0)
    await tid(page, "new-secret-done-button").click()
    await expect(tid(page, "new-secret-box")).to_be_hidden()
    await capture(screenshot, page, "dashboard-webhook-endpoint-desktop")

    await page.goto(f"{platform.api_url}/dashboard/webhooks/{other['id']}")
    await tid(page, "delete-endpoint-button").click()
    await expect(tid(page, "delete-confirm")).to_be_visible()
    await tid(page, "delete-confirm-button").click()
    await page.wait_for_url("**/dashboard/webhooks")
    await expect(tid(page, f"endpoint-row-{endpoint['id']}")).to_be_visible()
    await expect(tid(page, f"endpoint-row-{other['id']}")).to_have_count(0)
    assert (await rest.get(f"{ENDPOINTS}/{other['id']}")).status == 404
    # Its log stays readable, and says where it went.
    await expect(tid(page, f"webhook-log-{others_delivery}")).to_contain_text("deleted endpoint")
    await expect(tid(page, f"retry-webhook-{others_delivery}")).to_be_disabled()
    watch.expect_failure(r"404")  # the deleted endpoint's page, opened again
    await page.goto(f"{platform.api_url}/dashboard/webhooks/{other['id']}")
    await expect(tid(page, "endpoint-page-error")).to_contain_text("No webhook endpoint here")
    await expect(tid(page, "endpoint-page")).to_be_hidden()


@pytest.fixture
async def quick_auto_disable(platform: Platform) -> AsyncIterator[None]:
    """The dispatcher disables an endpoint whose attempts all failed for 2 s (then as before)."""
    await asyncio.to_thread(platform.restart, DISPATCHER, WEBHOOK_AUTO_DISABLE_AFTER_S=AUTO_DISABLE_AFTER_S)
    yield
    await asyncio.to_thread(platform.restart, DISPATCHER)


async def test_an_endpoint_the_dispatcher_disabled_stands_out_then_is_enabled_and_recovered(
    platform: Platform,
    open_page: PageFactory,
    rest: aiohttp.ClientSession,
    receiver: Receiver,
    screenshot: Screenshot,
    quick_auto_disable: None,
) -> None:
    receiver.status["flaky"] = 500
    flaky = await create_endpoint(rest, url=receiver.url("flaky"), description="Fulfilment (staging)")
    watcher = await create_endpoint(
        rest, url=receiver.url("watcher"), description="Ops alerts", events=["endpoint.disabled"]
    )
    await create_endpoint(
        rest,
        url=receiver.url("ledger") + "?region=south&source=paystream",
        description="Ledger",
        events=["payment.success", "payment.failed", "refund.processed", "refund.failed"],
        rate_limit_per_s=50,
    )
    delivery_id = await send_test(rest, flaky["id"])

    page, _watch = await open_page()
    await sign_in(page, platform, "/dashboard/webhooks")
    banner = tid(page, f"disabled-banner-{flaky['id']}")
    await expect(banner).to_be_visible(timeout=30_000)
    await expect(banner).to_contain_text(f"Every attempt failed for {AUTO_DISABLE_AFTER_S} seconds")
    await expect(tid(page, f"endpoint-state-{flaky['id']}")).to_contain_text("disabled by Paystream")
    await expect(tid(page, f"endpoint-row-{flaky['id']}")).to_have_class("clickable endpoint-row alarm")
    await expect(tid(page, f"endpoint-row-{watcher['id']}")).not_to_have_class("clickable endpoint-row alarm")
    stored = await fetch_endpoint(rest, flaky["id"])
    assert (stored["enabled"], stored["disabled_reason"]) == (False, "every attempt failed for 2 seconds")
    told = await eventually(lambda: receiver.at("watcher", "endpoint.disabled"), timeout=15)
    assert told[0].data["endpoint"]["id"] == flaky["id"]
    await capture(screenshot, page, "dashboard-webhooks-endpoints-desktop")

    await tid(page, f"disabled-banner-open-{flaky['id']}").click()
    await page.wait_for_url(f"**/dashboard/webhooks/{flaky['id']}")
    await expect(tid(page, "auto-disabled-reason")).to_contain_text("Every attempt failed for 2 seconds")
    await expect(tid(page, f"webhook-status-{delivery_id}")).to_have_text("failed")
    await expect(tid(page, "recover-button")).to_be_disabled()
    await capture(screenshot, page, "dashboard-webhook-endpoint-disabled-desktop")

    receiver.status["flaky"] = 200
    await tid(page, "banner-enable-button").click()
    await expect(tid(page, "endpoint-badges").locator(".badge").first).to_have_text("enabled")
    await expect(tid(page, "auto-disabled-banner")).to_have_count(0)
    attempts_before = len(receiver.at("flaky"))
    await tid(page, "recover-last-hour").click()
    await tid(page, "recover-button").click()
    await expect(tid(page, "recover-message")).to_have_text(
        "Re-sending 1 failed delivery, at most 20 a second."
    )
    await expect(tid(page, f"webhook-status-{delivery_id}")).to_have_text("success", timeout=15_000)
    resent = receiver.at("flaky")[attempts_before:]
    assert [r.webhook_id for r in resent] == [delivery_id]  # the same webhook-id as before
    await tid(page, "recover-button").click()  # nothing failed is left in the window
    await expect(tid(page, "recover-message")).to_contain_text("No failed deliveries")


async def test_the_webhook_pages_on_a_phone(
    platform: Platform,
    open_page: PageFactory,
    rest: aiohttp.ClientSession,
    receiver: Receiver,
    screenshot: Screenshot,
) -> None:
    endpoint = await create_endpoint(
        rest,
        url=receiver.url("a-rather-long-path/for/the/merchants/webhook/receiver") + "?tenant=salon-7",
        description="Accounting system",
        events=["payment.*", "refund.processed", "payment_link.paid", "invoice.paid"],
        headers={"X-Tenant": "salon-7"},
        rate_limit_per_s=5,
    )
    await send_test(rest, endpoint["id"])
    page, _watch = await open_page(viewport=PHONE)
    await sign_in(page, platform, "/dashboard/webhooks")
    await expect(tid(page, f"endpoint-row-{endpoint['id']}")).to_be_visible()
    await no_sideways_scroll(page, "the endpoints list")
    await capture(screenshot, page, "dashboard-webhooks-endpoints-phone")
    await tid(page, "add-endpoint-button").click()
    await tid(page, "endpoint-events-some").check()
    await tid(page, "endpoint-group-toggle-payment").click()
    await tid(page, "endpoint-add-header-button").click()
    await no_sideways_scroll(page, "the add form")
    await capture(screenshot, page, "dashboard-webhooks-add-phone")
    await page.goto(f"{platform.api_url}/dashboard/webhooks/{endpoint['id']}")
    await expect(tid(page, "endpoint-url")).to_have_text(endpoint["url"])
    await expect(tid(page, "webhook-logs-table").locator("tbody tr[data-status]")).to_have_count(1)
    await no_sideways_scroll(page, "the endpoint's page")
    await capture(screenshot, page, "dashboard-webhook-endpoint-phone")
