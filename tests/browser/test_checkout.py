"""The checkout in Debian's Chromium against the real platform: a merchant page on another origin
loads `/checkout.js`, opens the modal and pays (UPI, card), `onSuccess` / `onFailure` / `onClose`
fire, forged messages from a third origin change nothing, fields are checked while typing, the
page follows the payment by polling when the notifier is down, and the hosted page works on its
own with a return link. Every page is screenshotted (desktop and phone) under artifacts/."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from browserkit import DESKTOP, PHONE, PageFactory, PageWatch
from playwright.async_api import FrameLocator, Page, Route, expect

from paystream_devstack.testing.platform import Platform

KEY = "key_test_abc123"
AUTH = {"X-Api-Key": KEY, "X-Api-Secret": "secret_test_xyz789"}
NEXT_YEAR_YY = f"{(datetime.now(UTC).year + 1) % 100:02d}"
SETTLE_TIMEOUT_MS = 20_000

Screenshot = Callable[..., Awaitable[Path]]
OtherOrigin = Callable[[str], Awaitable[str]]

MERCHANT_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Merchant shop</title>
<style>body {{ font-family: sans-serif; margin: 40px; }} .hero {{ padding: 40px; background: #f5f5f4; }}</style>
</head><body>
<div class="hero"><h1>A merchant's shop</h1><p>Another origin than the API.</p>
<button id="buy">Buy</button></div>
{extra}
<script src="{api}/checkout.js"></script>
<script>
  window.callbacks = [];
  window.messages = [];
  window.addEventListener("message", (event) => {{
    window.messages.push({{ origin: event.origin, type: event.data && event.data.type }});
  }});
  window.openCheckout = (key, orderId) => {{
    window.checkout = new PaymentGateway({{
      key, orderId,
      onSuccess: (result) => window.callbacks.push({{ name: "success", result }}),
      onFailure: (error) => window.callbacks.push({{ name: "failure", error }}),
      onClose: () => window.callbacks.push({{ name: "close" }}),
    }});
    window.checkout.open();
  }};
</script>
</body></html>
"""

# A third origin's frame inside the merchant page: it forges the checkout's messages to the
# merchant page and the SDK's to the checkout, from the start, then posts a sentinel.
FORGER_PAGE = """<!doctype html><html><body><p>an ad</p>
<script>
  window.received = [];
  window.addEventListener("message", (event) => window.received.push(event.data));
  const forgedSuccess = { type: "payment_success", paymentId: "pay_FORGEDFORGED0000", orderId: "x", amount: 1 };
  function toOtherFrames(message) {
    for (let i = 0; i < window.parent.frames.length; i += 1) {
      const frame = window.parent.frames[i];
      if (frame !== window) frame.postMessage(message, "*");
    }
  }
  // Race the SDK's first message: whoever speaks first must not become the checkout's parent.
  const spam = setInterval(() => toOtherFrames({ type: "checkout_init", orderId: "x" }), 10);
  window.forge = () => {
    clearInterval(spam);
    window.parent.postMessage(forgedSuccess, "*");
    window.parent.postMessage({ type: "payment_failed", error: { code: "FORGED" } }, "*");
    window.parent.postMessage({ type: "close_requested" }, "*");
    toOtherFrames(forgedSuccess);
    toOtherFrames({ type: "close_requested" });
    window.parent.postMessage({ type: "sentinel" }, "*");
  };
</script></body></html>
"""


@pytest.fixture
async def merchant_api(platform: Platform) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=platform.api_url, headers=AUTH) as session:
        yield session


async def create_order(session: aiohttp.ClientSession, **fields: Any) -> dict[str, Any]:
    body = {"amount": 129900, "currency": "INR", "receipt": "INV-2041", **fields}
    async with session.post("/api/v1/orders", json=body) as response:
        assert response.status == 201, await response.text()
        order: dict[str, Any] = await response.json()
        return order


async def merchant_payment(session: aiohttp.ClientSession, payment_id: str) -> dict[str, Any]:
    async with session.get(f"/api/v1/payments/{payment_id}") as response:
        assert response.status == 200
        payment: dict[str, Any] = await response.json()
        return payment


async def open_merchant_page(
    open_page: PageFactory,
    other_origin: OtherOrigin,
    platform: Platform,
    *,
    viewport: dict[str, int] = DESKTOP,
    extra: str = "",
) -> tuple[Page, PageWatch]:
    page, watch = await open_page(viewport=viewport)
    await page.goto(await other_origin(MERCHANT_PAGE.format(api=platform.api_url, extra=extra)))
    return page, watch


async def open_checkout(page: Page, order_id: str) -> FrameLocator:
    await page.evaluate("([key, orderId]) => window.openCheckout(key, orderId)", [KEY, order_id])
    await expect(page.locator('[data-test-id="payment-modal"]')).to_be_visible()
    checkout = page.frame_locator('[data-test-id="payment-iframe"]')
    await expect(checkout.locator('[data-test-id="pay-button"]')).to_be_visible()
    return checkout


async def callbacks(page: Page) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = await page.evaluate("window.callbacks")
    return result


async def wait_for_callback(page: Page, name: str) -> dict[str, Any]:
    await page.wait_for_function(
        "(name) => window.callbacks.some((c) => c.name === name)", arg=name, timeout=SETTLE_TIMEOUT_MS
    )
    return next(c for c in await callbacks(page) if c["name"] == name)


class HeldPayments:
    """Holds the checkout's POST of a payment until released: the processing screen, on demand."""

    def __init__(self) -> None:
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def handle(self, route: Route) -> None:
        if route.request.method != "POST":
            await route.continue_()
            return
        self.arrived.set()
        await self.release.wait()
        await route.continue_()


async def hold_payments(page: Page) -> HeldPayments:
    held = HeldPayments()
    await page.route(re.compile(r".*/api/v1/public/payments\?.*"), held.handle)
    return held


async def pay_by_upi_through_the_modal(
    page: Page, checkout: FrameLocator, screenshot: Screenshot, prefix: str
) -> str:
    """Pay the open modal by UPI, screenshotting each state; return the payment id shown."""
    await expect(checkout.locator('[data-test-id="merchant-name"]')).to_have_text("Test Merchant")
    await expect(checkout.locator('[data-test-id="order-amount"]')).to_have_text("₹1,299.00")
    await checkout.locator('[data-test-id="vpa-input"]').fill("asha@okbank")
    await screenshot(page, f"{prefix}-form", full_page=False)
    held = await hold_payments(page)
    await checkout.locator('[data-test-id="pay-button"]').click()
    await held.arrived.wait()
    await expect(checkout.locator('[data-test-id="processing-state"]')).to_be_visible()
    await screenshot(page, f"{prefix}-processing", full_page=False)
    held.release.set()
    await expect(checkout.locator('[data-test-id="success-state"]')).to_be_visible(timeout=SETTLE_TIMEOUT_MS)
    await screenshot(page, f"{prefix}-success", full_page=False)
    payment_id = await checkout.locator('[data-test-id="payment-id"]').inner_text()
    assert re.fullmatch(r"pay_[A-Za-z0-9]{16}", payment_id)
    return payment_id


# ---- the modal on a merchant's page ----------------------------------------------------------------


@pytest.mark.parametrize(("viewport", "prefix"), [(DESKTOP, "checkout-desktop"), (PHONE, "checkout-phone")])
async def test_upi_in_the_modal_calls_on_success_with_the_payment_id(
    platform: Platform,
    open_page: PageFactory,
    other_origin: OtherOrigin,
    merchant_api: aiohttp.ClientSession,
    screenshot: Screenshot,
    viewport: dict[str, int],
    prefix: str,
) -> None:
    order = await create_order(merchant_api)
    page, _watch = await open_merchant_page(open_page, other_origin, platform, viewport=viewport)
    checkout = await open_checkout(page, order["id"])
    if viewport is PHONE:
        box = await page.locator('[data-test-id="payment-iframe"]').bounding_box()
        assert box is not None and box["width"] == PHONE["width"]  # the whole screen, no sideways scroll
        assert await checkout.locator("html").evaluate("(el) => el.scrollWidth <= el.clientWidth")
    payment_id = await pay_by_upi_through_the_modal(page, checkout, screenshot, prefix)

    success = await wait_for_callback(page, "success")
    assert success["result"] == {"paymentId": payment_id, "orderId": order["id"], "amount": 129900}
    assert (await merchant_payment(merchant_api, payment_id))["status"] == "success"
    # The success screen stays until the payer is done; "Done" closes the modal through the SDK.
    await checkout.locator('[data-test-id="done-button"]').click()
    await expect(page.locator('[data-test-id="payment-modal"]')).to_have_count(0)
    assert [c["name"] for c in await callbacks(page)] == ["success", "close"]


async def test_a_declined_payment_calls_on_failure(
    platform: Platform,
    open_page: PageFactory,
    other_origin: OtherOrigin,
    merchant_api: aiohttp.ClientSession,
    screenshot: Screenshot,
) -> None:
    platform.restart("payment_processor", TEST_PAYMENT_SUCCESS="false")
    try:
        order = await create_order(merchant_api)
        for viewport, name in ((DESKTOP, "checkout-desktop-failure"), (PHONE, "checkout-phone-failure")):
            page, _watch = await open_merchant_page(open_page, other_origin, platform, viewport=viewport)
            checkout = await open_checkout(page, order["id"])
            await checkout.locator('[data-test-id="vpa-input"]').fill("asha@okbank")
            await checkout.locator('[data-test-id="pay-button"]').click()
            await expect(checkout.locator('[data-test-id="failure-state"]')).to_be_visible(
                timeout=SETTLE_TIMEOUT_MS
            )
            await screenshot(page, name, full_page=False)
            failure = await wait_for_callback(page, "failure")
            assert failure["error"]["code"] == "PAYMENT_DECLINED"
            assert failure["error"]["description"]
            payment = await merchant_payment(merchant_api, failure["error"]["paymentId"])
            assert payment["status"] == "failed" and payment["order_id"] == order["id"]
            assert [c["name"] for c in await callbacks(page)] == ["failure"]
            # "Try again" goes back to the form, the order still payable.
            await checkout.locator('[data-test-id="retry-button"]').click()
            await expect(checkout.locator('[data-test-id="pay-button"]')).to_be_visible()
    finally:
        platform.restart("payment_processor", TEST_PAYMENT_SUCCESS="true")


async def test_the_close_button_and_escape_call_on_close(
    platform: Platform, open_page: PageFactory, other_origin: OtherOrigin, merchant_api: aiohttp.ClientSession
) -> None:
    order = await create_order(merchant_api)
    page, _watch = await open_merchant_page(open_page, other_origin, platform)
    modal = page.locator('[data-test-id="payment-modal"]')

    await open_checkout(page, order["id"])
    await page.locator('[data-test-id="close-modal-button"]').click()
    await expect(modal).to_have_count(0)
    assert [c["name"] for c in await callbacks(page)] == ["close"]
    assert await page.evaluate("document.documentElement.style.overflow") == ""

    # Escape on the merchant's page (focus starts on the close button)...
    await open_checkout(page, order["id"])
    await page.keyboard.press("Escape")
    await expect(modal).to_have_count(0)
    # ...and inside the checkout, where the merchant's page never sees the key.
    checkout = await open_checkout(page, order["id"])
    await checkout.locator('[data-test-id="vpa-input"]').click()
    await page.keyboard.press("Escape")
    await expect(modal).to_have_count(0)
    assert [c["name"] for c in await callbacks(page)] == ["close", "close", "close"]
    assert await page.evaluate("document.getElementById('buy').closest('[inert]')") is None


async def test_focus_stays_in_the_modal(
    platform: Platform, open_page: PageFactory, other_origin: OtherOrigin, merchant_api: aiohttp.ClientSession
) -> None:
    order = await create_order(merchant_api)
    page, _watch = await open_merchant_page(open_page, other_origin, platform)
    checkout = await open_checkout(page, order["id"])
    in_modal = "() => document.getElementById('payment-gateway-modal').contains(document.activeElement)"
    assert await page.evaluate(in_modal)
    for _ in range(12):
        await page.keyboard.press("Tab")
        assert await page.evaluate(in_modal)
    for _ in range(6):
        await page.keyboard.press("Shift+Tab")
        assert await page.evaluate(in_modal)
    # Tabbing does reach the checkout's fields.
    await checkout.locator('[data-test-id="vpa-input"]').focus()
    assert await page.evaluate("document.activeElement.dataset.testId") == "payment-iframe"
    # The rest of the page is out of reach meanwhile.
    assert await page.evaluate("document.getElementById('buy').closest('[inert]') !== null")


async def test_forged_messages_from_a_third_origin_change_nothing(
    platform: Platform, open_page: PageFactory, other_origin: OtherOrigin, merchant_api: aiohttp.ClientSession
) -> None:
    forger_url = await other_origin(FORGER_PAGE)
    order = await create_order(merchant_api)
    page, _watch = await open_merchant_page(
        open_page, other_origin, platform, extra=f'<iframe id="forger" src="{forger_url}"></iframe>'
    )
    forger_origin = forger_url.rstrip("/")
    checkout = await open_checkout(page, order["id"])
    forger = next(frame for frame in page.frames if frame.url == forger_url)
    await forger.evaluate("window.forge()")
    await page.wait_for_function("window.messages.some((m) => m.type === 'sentinel')")

    forged = [m for m in await page.evaluate("window.messages") if m["origin"] == forger_origin]
    assert {m["type"] for m in forged} >= {"payment_success", "payment_failed", "close_requested"}
    assert await callbacks(page) == []  # the SDK heard them and ignored them
    await expect(page.locator('[data-test-id="payment-modal"]')).to_be_visible()
    await expect(checkout.locator('[data-test-id="pay-button"]')).to_be_visible()

    # The checkout still reports to its real parent only, and the payment id is the real one.
    await checkout.locator('[data-test-id="vpa-input"]').fill("asha@okbank")
    await checkout.locator('[data-test-id="pay-button"]').click()
    success = await wait_for_callback(page, "success")
    assert (
        success["result"]["paymentId"] == await checkout.locator('[data-test-id="payment-id"]').inner_text()
    )
    assert [c["name"] for c in await callbacks(page)] == ["success"]
    assert await forger.evaluate("window.received") == []


# ---- fields ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("viewport", "name"), [(DESKTOP, "checkout-desktop-card-errors"), (PHONE, "checkout-phone-card-errors")]
)
async def test_card_fields_are_checked_while_typing_and_a_card_pays(
    platform: Platform,
    open_page: PageFactory,
    other_origin: OtherOrigin,
    merchant_api: aiohttp.ClientSession,
    screenshot: Screenshot,
    viewport: dict[str, int],
    name: str,
) -> None:
    order = await create_order(merchant_api)
    page, _watch = await open_merchant_page(open_page, other_origin, platform, viewport=viewport)
    checkout = await open_checkout(page, order["id"])
    await checkout.locator('[data-test-id="method-card"]').click()
    number = checkout.locator('[data-test-id="card-number-input"]')
    number_error = checkout.locator('[data-test-id="card-number-error"]')
    expiry = checkout.locator('[data-test-id="expiry-input"]')
    expiry_error = checkout.locator('[data-test-id="expiry-error"]')
    cvv = checkout.locator('[data-test-id="cvv-input"]')
    cvv_error = checkout.locator('[data-test-id="cvv-error"]')

    # Shown while typing, before the field is left: a failed Luhn check, an impossible month, an
    # expired card, a CVV that is too long for the network.
    await number.press_sequentially("4111111111111112")
    await expect(number).to_have_value("4111 1111 1111 1112")
    await expect(number_error).to_have_text("This card number is not valid")
    await expiry.press_sequentially("13")
    await expect(expiry_error).to_have_text("Enter a valid month (01 to 12)")
    await expiry.fill("")
    await expiry.press_sequentially("0120")
    await expect(expiry).to_have_value("01 / 20")
    await expect(expiry_error).to_have_text("This card has expired")
    await cvv.press_sequentially("12")
    await expect(cvv_error).to_be_hidden()  # still typing: not yet an error
    await checkout.locator('[data-test-id="name-input"]').click()
    await expect(cvv_error).to_have_text("Enter the 3-digit CVV")
    await screenshot(page, name, full_page=False)

    # Corrected, every error goes; an American Express number wants a 4-digit CVV.
    await number.fill("")
    await number.press_sequentially("378282246310005")
    await expect(number).to_have_value("3782 822463 10005")
    await expect(number_error).to_be_hidden()
    await expect(checkout.locator('[data-test-id="card-brand"]')).to_have_text("American Express")
    await expect(cvv_error).to_have_text("Enter the 4-digit CVV (front of the card)")
    await number.fill("")
    await number.press_sequentially("4111111111111111")
    await expect(number_error).to_be_hidden()
    await expiry.fill("")
    await expiry.press_sequentially(f"12{NEXT_YEAR_YY}")
    await expect(expiry_error).to_be_hidden()
    await cvv.press_sequentially("3")
    await expect(cvv_error).to_be_hidden()
    await checkout.locator('[data-test-id="name-input"]').fill("Asha Rao")
    await checkout.locator('[data-test-id="pay-button"]').click()
    await expect(checkout.locator('[data-test-id="success-state"]')).to_be_visible(timeout=SETTLE_TIMEOUT_MS)
    success = await wait_for_callback(page, "success")
    payment = await merchant_payment(merchant_api, success["result"]["paymentId"])
    assert (
        payment["method"] == "card" and payment["card_network"] == "visa" and payment["card_last4"] == "1111"
    )


async def test_pay_with_empty_fields_says_what_is_missing(
    platform: Platform, open_page: PageFactory, other_origin: OtherOrigin, merchant_api: aiohttp.ClientSession
) -> None:
    order = await create_order(merchant_api)
    page, _watch = await open_merchant_page(open_page, other_origin, platform)
    checkout = await open_checkout(page, order["id"])
    await checkout.locator('[data-test-id="pay-button"]').click()
    await expect(checkout.locator('[data-test-id="vpa-error"]')).to_have_text(
        "Enter your UPI ID, like name@okbank"
    )
    await checkout.locator('[data-test-id="vpa-input"]').fill("asha@@okbank")
    await expect(checkout.locator('[data-test-id="vpa-error"]')).to_have_text(
        "Enter a valid UPI ID, like name@okbank"
    )
    await checkout.locator('[data-test-id="method-card"]').click()
    await checkout.locator('[data-test-id="pay-button"]').click()
    for field, text in (
        ("card-number-error", "Enter your card number"),
        ("expiry-error", "Enter the expiry date (MM / YY)"),
        ("cvv-error", "Enter your card's security code"),
        ("name-error", "Enter the name on your card"),
    ):
        await expect(checkout.locator(f'[data-test-id="{field}"]')).to_have_text(text)
    await expect(checkout.locator('[data-test-id="card-number-input"]')).to_be_focused()
    # Nothing was sent: the order was never attempted.
    async with merchant_api.get(f"/api/v1/orders/{order['id']}") as response:
        assert (await response.json())["attempts"] == 0


# ---- without the notifier -----------------------------------------------------------------------------


async def test_without_the_notifier_the_checkout_polls_to_success(
    platform: Platform,
    open_page: PageFactory,
    other_origin: OtherOrigin,
    merchant_api: aiohttp.ClientSession,
) -> None:
    platform.processes["notifier"].stop()
    try:
        order = await create_order(merchant_api)
        page, watch = await open_merchant_page(open_page, other_origin, platform)
        # The socket's attempts to reach the stopped notifier are the failures under test.
        watch.expect_failure(re.escape(platform.notifier_url.split("//")[1]))
        checkout = await open_checkout(page, order["id"])
        await checkout.locator('[data-test-id="vpa-input"]').fill("asha@okbank")
        await checkout.locator('[data-test-id="pay-button"]').click()
        await expect(checkout.locator('[data-test-id="success-state"]')).to_be_visible(
            timeout=SETTLE_TIMEOUT_MS
        )
        assert (
            await checkout.locator('[data-test-id="processing-state"]').get_attribute("data-channel")
            == "polling"
        )
        success = await wait_for_callback(page, "success")
        assert (
            success["result"]["paymentId"]
            == await checkout.locator('[data-test-id="payment-id"]').inner_text()
        )
    finally:
        platform.restart("notifier")


async def test_with_the_notifier_the_checkout_follows_the_socket(
    platform: Platform, open_page: PageFactory, other_origin: OtherOrigin, merchant_api: aiohttp.ClientSession
) -> None:
    order = await create_order(merchant_api)
    page, _watch = await open_merchant_page(open_page, other_origin, platform)
    checkout = await open_checkout(page, order["id"])
    await checkout.locator('[data-test-id="vpa-input"]').fill("asha@okbank")
    polls: list[str] = []
    page.on(
        "request",
        lambda request: polls.append(request.url) if "/api/v1/public/payments/" in request.url else None,
    )
    await checkout.locator('[data-test-id="pay-button"]').click()
    await expect(checkout.locator('[data-test-id="success-state"]')).to_be_visible(timeout=SETTLE_TIMEOUT_MS)
    assert (
        await checkout.locator('[data-test-id="processing-state"]').get_attribute("data-channel") == "socket"
    )
    assert len(polls) <= 1  # one read after subscribing (a payment may settle first), no polling


# ---- the hosted page on its own, and the demo ------------------------------------------------------------


@pytest.mark.parametrize(("viewport", "suffix"), [(DESKTOP, "desktop"), (PHONE, "phone")])
async def test_the_hosted_page_alone_offers_the_return_link(
    platform: Platform,
    open_page: PageFactory,
    merchant_api: aiohttp.ClientSession,
    screenshot: Screenshot,
    viewport: dict[str, int],
    suffix: str,
) -> None:
    order = await create_order(merchant_api, return_url="https://shop.example.com/orders/2041?from=pay")
    page, _watch = await open_page(viewport=viewport)
    await page.goto(f"{platform.api_url}/checkout?order_id={order['id']}&key={KEY}")
    await expect(page.locator("#test-badge")).to_be_visible()
    await screenshot(page, f"checkout-standalone-{suffix}-form")
    await page.locator('[data-test-id="vpa-input"]').fill("asha@okbank")
    await page.locator('[data-test-id="pay-button"]').click()
    await expect(page.locator('[data-test-id="success-state"]')).to_be_visible(timeout=SETTLE_TIMEOUT_MS)
    await screenshot(page, f"checkout-standalone-{suffix}-success")
    payment_id = await page.locator('[data-test-id="payment-id"]').inner_text()
    link = page.locator('[data-test-id="return-link"]')
    await expect(link).to_have_text("Return to Test Merchant")
    href = await link.get_attribute("href")
    assert href == (
        "https://shop.example.com/orders/2041?from=pay"
        f"&paystream_payment_id={payment_id}&paystream_order_id={order['id']}&paystream_status=success"
    )
    await expect(page.locator('[data-test-id="done-button"]')).to_be_hidden()

    # Opened again, the paid order has nothing left to pay.
    await page.reload()
    await expect(page.locator('[data-test-id="notice-state"]')).to_contain_text("already paid")


async def test_a_bad_link_says_so(platform: Platform, open_page: PageFactory, screenshot: Screenshot) -> None:
    page, watch = await open_page()
    # The unknown order's 404, as the page watch sees it and as Chromium logs it.
    watch.expect_failure(r"/api/v1/public/orders/order_AAAAAAAAAAAAAAAA\?key=")
    await page.goto(f"{platform.api_url}/checkout?order_id=order_AAAAAAAAAAAAAAAA&key={KEY}")
    await expect(page.locator('[data-test-id="notice-state"]')).to_contain_text("Order not found")
    await screenshot(page, "checkout-desktop-not-found")
    await page.goto(f"{platform.api_url}/checkout")
    await expect(page.locator('[data-test-id="notice-state"]')).to_contain_text("incomplete")


@pytest.mark.parametrize(("viewport", "suffix"), [(DESKTOP, "desktop"), (PHONE, "phone")])
async def test_the_demo_page_embeds_the_sdk(
    platform: Platform,
    open_page: PageFactory,
    merchant_api: aiohttp.ClientSession,
    screenshot: Screenshot,
    viewport: dict[str, int],
    suffix: str,
) -> None:
    page, _watch = await open_page(viewport=viewport)
    await page.goto(f"{platform.api_url}/demo")
    await page.locator("#more").click()
    await expect(page.locator('[data-test-id="demo-pay-button"]')).to_have_text("Buy now · ₹698.00")
    await screenshot(page, f"demo-{suffix}")
    await page.locator('[data-test-id="demo-pay-button"]').click()
    checkout = page.frame_locator('[data-test-id="payment-iframe"]')
    await expect(checkout.locator('[data-test-id="order-amount"]')).to_have_text("₹698.00")
    await screenshot(page, f"demo-{suffix}-modal", full_page=False)
    await checkout.locator('[data-test-id="vpa-input"]').fill("asha@okbank")
    await checkout.locator('[data-test-id="pay-button"]').click()
    await expect(checkout.locator('[data-test-id="success-state"]')).to_be_visible(timeout=SETTLE_TIMEOUT_MS)
    payment_id = await checkout.locator('[data-test-id="payment-id"]').inner_text()
    await page.keyboard.press("Escape")
    await expect(page.locator('[data-test-id="payment-modal"]')).to_have_count(0)
    log = page.locator('[data-test-id="demo-log"]')
    await expect(log.locator('li[data-callback="onSuccess"]')).to_contain_text(payment_id)
    await expect(log.locator('li[data-callback="onClose"]')).to_have_count(1)
    await expect(page.locator('[data-test-id="demo-result"]')).to_contain_text(payment_id)
    assert (await merchant_payment(merchant_api, payment_id))["amount"] == 69800
    await screenshot(page, f"demo-{suffix}-paid")
