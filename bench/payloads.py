"""What the load generators send: signed Razorpay webhooks, merchant API payments, signed deliveries.

Every request is unique: request `n` of a run carries ids built from the run's namespace and `n`, so
the harness can later look up exactly the requests that were answered with success.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

import orjson

# The test merchant that the API seeds (services/api/src/paystream_api/seed.py).
MERCHANT_ID = "mer_test0000000001"
API_KEY = "key_test_abc123"
API_SECRET = "secret_test_xyz789"
RAZORPAY_ACCOUNT_ID = "acc_BenchAccount01"
AMOUNT = 50_000

RequestFactory = Callable[[int], tuple[bytes, Mapping[str, str]]]


def hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def razorpay_event_id(namespace: str, n: int) -> str:
    return f"evt_{namespace}_{n}"


def razorpay_order_id(namespace: str, n: int) -> str:
    return f"order_{namespace}_{n}"


def razorpay_payment_id(namespace: str, n: int) -> str:
    return f"pay_{namespace}_{n}"


def razorpay_captured(namespace: str, n: int, salon_id: str | None = None) -> bytes:
    """A Razorpay `payment.captured` event for order `order_<namespace>_<n>` (its invoice id)."""
    notes = {"salon_id": salon_id} if salon_id is not None else {}
    return orjson.dumps(
        {
            "entity": "event",
            "account_id": RAZORPAY_ACCOUNT_ID,
            "event": "payment.captured",
            "contains": ["payment"],
            "payload": {
                "payment": {
                    "entity": {
                        "id": razorpay_payment_id(namespace, n),
                        "entity": "payment",
                        "amount": AMOUNT,
                        "currency": "INR",
                        "status": "captured",
                        "order_id": razorpay_order_id(namespace, n),
                        "method": "upi",
                        "vpa": "gaurav.kumar@exampleupi",
                        "captured": True,
                        "email": "gaurav.kumar@example.com",
                        "contact": "+919000090000",
                        "notes": notes,
                        "created_at": 1700000000,
                    }
                }
            },
            "created_at": 1700000001,
        }
    )


def signed_razorpay_headers(namespace: str, n: int, body: bytes, secret: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "X-Razorpay-Signature": hmac_hex(secret, body),
        "x-razorpay-event-id": razorpay_event_id(namespace, n),
    }


def payment_order_id(namespace: str, n: int) -> str:
    return f"bench_{namespace}_{n}"


def idempotency_key(namespace: str, n: int) -> str:
    return f"bench-{namespace}-{n}"


def _razorpay_factory(namespace: str, secret: str) -> RequestFactory:
    def build(n: int) -> tuple[bytes, Mapping[str, str]]:
        body = razorpay_captured(namespace, n)
        return body, signed_razorpay_headers(namespace, n, body, secret)

    return build


def _payment_factory(namespace: str, _secret: str) -> RequestFactory:
    def build(n: int) -> tuple[bytes, Mapping[str, str]]:
        body = orjson.dumps(
            {
                "order_id": payment_order_id(namespace, n),
                "amount": AMOUNT,
                "currency": "INR",
                "method": "upi",
                "vpa": "bench.customer@okaxis",
            }
        )
        headers = {
            "Content-Type": "application/json",
            "X-Api-Key": API_KEY,
            "X-Api-Secret": API_SECRET,
            "Idempotency-Key": idempotency_key(namespace, n),
        }
        return body, headers

    return build


def success_payment(payment_id: str, order_id: str) -> dict[str, Any]:
    """A successful UPI payment of the test merchant, as the REST API shows it."""
    return {
        "id": payment_id,
        "entity": "payment",
        "merchant_id": MERCHANT_ID,
        "order_id": order_id,
        "amount": AMOUNT,
        "currency": "INR",
        "status": "success",
        "method": "upi",
        "vpa": "bench.customer@okaxis",
        "card_network": None,
        "card_last4": None,
        "captured": False,
        "captured_at": None,
        "amount_refunded": 0,
        "refund_status": None,
        "error_code": None,
        "error_description": None,
        "created_at": "2024-01-01T00:00:00.000Z",
        "updated_at": "2024-01-01T00:00:00.000Z",
    }


# A delivery body the size of a real `payment.success` webhook, signed once: the receiver verifies
# every request the same way whether the dispatcher or the raw client sent it.
_DELIVERY_BODY = orjson.dumps(
    {
        "event": "payment.success",
        "timestamp": 1700000000,
        "data": {"payment": success_payment("pay_baseline0000000", "order_baseline")},
    }
)


def _delivery_factory(namespace: str, secret: str) -> RequestFactory:
    signature = hmac_hex(secret, _DELIVERY_BODY)

    def build(n: int) -> tuple[bytes, Mapping[str, str]]:
        headers = {
            "Content-Type": "application/json",
            "X-Webhook-Signature": signature,
            "webhook-id": f"msg_{namespace}_{n}",
        }
        return _DELIVERY_BODY, headers

    return build


_FACTORIES: dict[str, Callable[[str, str], RequestFactory]] = {
    "razorpay": _razorpay_factory,
    "payment": _payment_factory,
    "delivery": _delivery_factory,
}
KINDS: tuple[str, ...] = tuple(_FACTORIES)


def request_factory(kind: str, namespace: str, secret: str) -> RequestFactory:
    """Request `n` of a run of `kind` ("razorpay", "payment" or "delivery"): its body and headers."""
    return _FACTORIES[kind](namespace, secret)
