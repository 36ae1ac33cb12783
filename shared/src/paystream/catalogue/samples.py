"""Sample objects for the catalogue's sample events: one payment's life, and what providers report.

Each matches its schema in `paystream.catalogue.objects` (the suite validates every sample against
its event's schema). The merchant API's objects are typed with `paystream.resources`' TypedDicts, so
that a field added there and not here fails type checking too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from paystream.resources import PaymentResource, RefundResource
from paystream.webhooks import webhook_test_data

# When every sample event happened (the webhook body's `timestamp`).
SAMPLE_TIME = datetime(2026, 6, 1, 10, 30, 5, tzinfo=UTC)

MERCHANT_ID = "mer_test0000000001"
PAYMENT_ID = "pay_Q2mX8aLr5TbN1vKc"
REFUND_ID = "rfnd_H7dW3pZs9QeY4uJm"
RAZORPAY_PAYMENT_ID = "pay_29QQoUBi66xm2f"

CREATED_AT = "2026-06-01T10:30:00.412Z"
SETTLED_AT = "2026-06-01T10:30:05.118Z"
PROVIDER_CREATED_AT = "2026-06-01T10:29:58.604213Z"
PROVIDER_UPDATED_AT = "2026-06-01T10:30:04.991027Z"


def payment(
    status: str,
    *,
    captured: bool = False,
    error: tuple[str, str] | None = None,
    refunded: int = 0,
) -> PaymentResource:
    amount = 50_000
    return {
        "id": PAYMENT_ID,
        "entity": "payment",
        "merchant_id": MERCHANT_ID,
        "order_id": "order_Nc4vR7kT1pWx9ZaB",
        "amount": amount,
        "currency": "INR",
        "status": status,
        "method": "upi",
        "vpa": "asha@okbank",
        "card_network": None,
        "card_last4": None,
        "captured": captured,
        "captured_at": "2026-06-01T10:31:12.730Z" if captured else None,
        "amount_refunded": refunded,
        "refund_status": None if refunded == 0 else ("full" if refunded >= amount else "partial"),
        "error_code": error[0] if error else None,
        "error_description": error[1] if error else None,
        "created_at": CREATED_AT,
        "updated_at": CREATED_AT if status in ("created", "pending") else SETTLED_AT,
    }


def refund(status: str) -> RefundResource:
    processed = status == "processed"
    return {
        "id": REFUND_ID,
        "entity": "refund",
        "merchant_id": MERCHANT_ID,
        "payment_id": PAYMENT_ID,
        "amount": 15_000,
        "currency": "INR",
        "status": status,
        "reason": "Customer request",
        "processed_at": "2026-06-01T10:40:03.250Z" if processed else None,
        "created_at": "2026-06-01T10:40:02.101Z",
        "updated_at": "2026-06-01T10:40:03.250Z" if processed else "2026-06-01T10:40:02.101Z",
    }


def provider_payment(
    status: str, provider_status: str, *, error: tuple[str, str] | None = None
) -> dict[str, Any]:
    return {
        "id": RAZORPAY_PAYMENT_ID,
        "entity": "payment",
        "provider": "razorpay",
        "provider_status": provider_status,
        "order_id": "order_9A33XWu170gUtm",
        "invoice_id": "order_9A33XWu170gUtm",
        "amount": 50_000,
        "currency": "INR",
        "method": "card",
        "vpa": None,
        "card_network": "visa",
        "card_last4": "1111",
        "status": status,
        "captured": provider_status in ("captured", "refunded"),
        "amount_refunded": 0,
        "error_code": error[0] if error else None,
        "error_description": error[1] if error else None,
        "salon_id": None,
        "created_at": PROVIDER_CREATED_AT,
        "updated_at": PROVIDER_UPDATED_AT,
    }


def provider_refund(status: str, *, speed_processed: str | None = None) -> dict[str, Any]:
    return {
        "id": "rfnd_FP8QHiV938haTz",
        "entity": "refund",
        "provider": "razorpay",
        "payment_id": RAZORPAY_PAYMENT_ID,
        "amount": 10_000,
        "currency": "INR",
        "status": status,
        "reason": "Item returned",
        "speed_requested": "optimum",
        "speed_processed": speed_processed,
        "processed_at": PROVIDER_UPDATED_AT if status == "processed" else None,
        "created_at": PROVIDER_CREATED_AT,
        "updated_at": PROVIDER_UPDATED_AT,
    }


def dispute(status: str) -> dict[str, Any]:
    return {
        "id": "disp_AHfqOvkldwsbqt",
        "entity": "dispute",
        "provider": "razorpay",
        "payment_id": RAZORPAY_PAYMENT_ID,
        "amount": 50_000,
        "currency": "INR",
        "reason_code": "goods_not_received",
        "phase": "chargeback",
        "status": status,
        "respond_by": "2026-06-08T10:30:00Z",
        "created_at": PROVIDER_CREATED_AT,
        "updated_at": PROVIDER_UPDATED_AT,
    }


def provider_order() -> dict[str, Any]:
    return {
        "id": "order_9A33XWu170gUtm",
        "entity": "order",
        "provider": "razorpay",
        "amount": 50_000,
        "amount_paid": 50_000,
        "currency": "INR",
        "receipt": "rcpt_1001",
        "status": "paid",
        "created_at": PROVIDER_CREATED_AT,
        "updated_at": PROVIDER_UPDATED_AT,
    }


def invoice(status: str) -> dict[str, Any]:
    paid = {"paid": 100_000, "partially_paid": 40_000}.get(status, 0)
    return {
        "id": "inv_DAweOiQ7amIUVd",
        "entity": "invoice",
        "provider": "razorpay",
        "order_id": "order_DAweOiG5ZNFY3i",
        "payment_id": "pay_DAwmpIvMJyXRrr" if paid else None,
        "currency": "INR",
        "short_url": "https://rzp.io/i/2wxV8Xs",
        "amount": 100_000,
        "amount_paid": paid,
        "amount_due": 100_000 - paid,
        "status": status,
        "updated_at": PROVIDER_UPDATED_AT,
    }


def invoice_payment() -> dict[str, Any]:
    """The payment that (partly) paid the sample invoice."""
    return {
        **provider_payment("success", "captured"),
        "id": "pay_DAwmpIvMJyXRrr",
        "order_id": "order_DAweOiG5ZNFY3i",
        "invoice_id": "inv_DAweOiQ7amIUVd",
        "amount": 40_000,
    }


def payment_link(status: str) -> dict[str, Any]:
    paid = {"paid": 150_000, "partially_paid": 50_000}.get(status, 0)
    return {
        "id": "plink_ERgihyaAAC0VNW",
        "entity": "payment_link",
        "provider": "razorpay",
        "order_id": "order_ERgiiUlAxvJSaL",
        "reference_id": "TS1989",
        "currency": "INR",
        "short_url": "https://rzp.io/i/nxrHnLJ",
        "amount": 150_000,
        "amount_paid": paid,
        "status": status,
        "updated_at": PROVIDER_UPDATED_AT,
    }


def link_payment() -> dict[str, Any]:
    """The payment that (partly) paid the sample payment link."""
    return {
        **provider_payment("success", "captured"),
        "id": "pay_ERgihyaAAC0VNX",
        "order_id": "order_ERgiiUlAxvJSaL",
        "invoice_id": "order_ERgiiUlAxvJSaL",
        "amount": 50_000,
        "method": "upi",
        "vpa": "gaurav.kumar@exampleupi",
        "card_network": None,
        "card_last4": None,
    }


def saved_card() -> dict[str, Any]:
    return {
        "masked_card_no": "411111xxxxxx1111",
        "expiry": "12/27",
        "scheme": "VISA",
        "holder_name": "Nimal Perera",
        "nickname": "My Visa",
        "default_card": True,
        "reference": "ref-CUST-7781-1",
        "customer_id": "CUST-7781",
    }


def endpoint() -> dict[str, Any]:
    return {
        "id": "we_0197a3c5e1b27c4d9f0a1b2c3d4e5f60",
        "url": "https://shop.example.com/webhooks/paystream",
        "disabled_at": "2026-06-01T10:30:05.000Z",
        "reason": "the endpoint answered 410 Gone",
    }


def webhook_test() -> dict[str, Any]:
    return webhook_test_data(MERCHANT_ID)
