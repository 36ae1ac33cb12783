"""What the public checkout endpoints show: a narrow view of an order and of a payment, and the
notifier grant that lets the payer's browser follow that one order live.

An order shows what the payer is paying (merchant name, amount, currency, receipt) and where to go
afterwards; never its notes, the merchant's id or anything else of the merchant's. A payment shows
its own outcome, the method's network and last four digits at most; never the payer's VPA (whoever
has the payment id can read its status).
"""

from __future__ import annotations

from typing import Literal, TypedDict

from paystream.notifier_tokens import BROWSER_TOKEN_TTL_S, mint_notifier_token
from paystream.resources import PaymentResource, Row
from paystream_api.public_api.access import PublicMerchant
from paystream_api.settings import ApiSettings

# The token's subject: a payer has no user id, and the notifier's ids may hold no colon.
CHECKOUT_SUBJECT = "checkout"


class NotifierGrant(TypedDict):
    url: str
    token: str
    expires_in: int


class CheckoutMerchant(TypedDict):
    name: str


class CheckoutOrder(TypedDict):
    id: str
    entity: Literal["order"]
    amount: int
    amount_due: int
    currency: str
    status: str
    receipt: str | None
    return_url: str | None
    test_mode: bool
    merchant: CheckoutMerchant
    notifier: NotifierGrant


class CheckoutPayment(TypedDict):
    id: str
    entity: Literal["payment"]
    order_id: str
    amount: int
    currency: str
    status: str
    method: str
    card_network: str | None
    card_last4: str | None
    error_code: str | None
    error_description: str | None
    created_at: str


def notifier_grant(settings: ApiSettings, merchant_id: str, order_id: str) -> NotifierGrant:
    """A fresh token that may watch `order_id` only (the notifier refuses it everything else)."""
    token = mint_notifier_token(
        settings.jwt_secret, merchant_id=merchant_id, subject=CHECKOUT_SUBJECT, invoice_id=order_id
    )
    return {"url": settings.notifier_public_url, "token": token, "expires_in": BROWSER_TOKEN_TTL_S}


def checkout_order(
    row: Row, merchant: PublicMerchant, grant: NotifierGrant, *, test_mode: bool
) -> CheckoutOrder:
    """The order as the payer sees it; `test_mode` puts a "Test mode" badge on the page (no real
    money moves)."""
    amount = int(row["amount"])
    return {
        "id": row["id"],
        "entity": "order",
        "amount": amount,
        "amount_due": amount - int(row["amount_paid"]),
        "currency": row["currency"],
        "status": row["status"],
        "receipt": row["receipt"],
        "return_url": row["return_url"],
        "test_mode": test_mode,
        "merchant": {"name": merchant.name},
        "notifier": grant,
    }


def checkout_payment(payment: PaymentResource) -> CheckoutPayment:
    """The payer's view of a payment, from the merchant's."""
    return {
        "id": payment["id"],
        "entity": "payment",
        "order_id": payment["order_id"],
        "amount": payment["amount"],
        "currency": payment["currency"],
        "status": payment["status"],
        "method": payment["method"],
        "card_network": payment["card_network"],
        "card_last4": payment["card_last4"],
        "error_code": payment["error_code"],
        "error_description": payment["error_description"],
        "created_at": payment["created_at"],
    }
