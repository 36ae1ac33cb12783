"""The JSON Schemas of the objects that webhooks carry in `data`, one function per object.

Two families, because two parts of the platform build them:

- payments and refunds made through the merchant API (`paystream.resources`: exactly what
  `GET /api/v1/payments/{id}` and `GET /api/v1/refunds/{id}` return);
- objects reported by a payment provider (Razorpay, PAYable) and recorded by the payment processor
  (`payment_processor.provider_events`): they say which `provider`, carry the provider's own ids,
  and have no `merchant_id` (the webhook goes to the merchant who owns the provider account).

A function takes the status an event type always shows, so that each event's schema says it.
"""

from __future__ import annotations

from collections.abc import Sequence

from paystream.catalogue.fields import (
    JsonSchema,
    amount,
    boolean,
    choice,
    currency,
    null,
    nullable,
    provider_amount,
    provider_currency,
    record,
    text,
    timestamp,
)

PROVIDERS = ("razorpay", "payable")
API_CARD_NETWORKS = ("visa", "mastercard", "rupay", "amex")


def _provider() -> JsonSchema:
    return choice(PROVIDERS, "The payment provider that reported the object.")


def _provider_id(what: str) -> JsonSchema:
    return text(f"The provider's id of the {what} (unique within your provider account).")


def payment(status: str, *, captured: bool) -> JsonSchema:
    """A payment made through the merchant API (`POST /api/v1/payments`, the checkout)."""
    failed = status == "failed"
    return record(
        "Payment (merchant API)",
        "A payment made through the merchant API or the hosted checkout, exactly as "
        "GET /api/v1/payments/{id} returns it.",
        {
            "id": text("The payment's id.", pattern=r"^pay_[A-Za-z0-9]{16}$"),
            "entity": choice(["payment"], "The kind of object."),
            "merchant_id": text("Your merchant id."),
            "order_id": text(
                "The order paid: an `order_…` id from POST /api/v1/orders, or your own reference."
            ),
            "amount": amount("The amount", minimum=1),
            "currency": currency(),
            "status": choice([status], "The payment's status: created, pending, success or failed."),
            "method": choice(["upi", "card"], "How the payer pays."),
            "vpa": nullable(text("The payer's UPI address (UPI payments).")),
            "card_network": nullable(choice(API_CARD_NETWORKS, "The card's network (card payments).")),
            "card_last4": nullable(text("The card's last four digits (card payments).", pattern=r"^\d{4}$")),
            "captured": boolean("Whether the payment has been captured.", const=captured),
            "captured_at": timestamp("When it was captured.")
            if captured
            else null("When it was captured: not yet."),
            "amount_refunded": amount("How much of it is refunded or being refunded"),
            "refund_status": nullable(
                choice(["partial", "full"], "Whether part or all of it is refunded; null when none is.")
            ),
            "error_code": text("Why it failed: `PAYMENT_DECLINED` or `ORDER_ALREADY_PAID`.")
            if failed
            else null("Set only when the payment failed."),
            "error_description": text("Why it failed, in words.")
            if failed
            else null("Set only when the payment failed."),
            "created_at": timestamp("When the payment was created."),
            "updated_at": timestamp("When it last changed."),
        },
    )


def provider_payment(statuses: Sequence[str]) -> JsonSchema:
    """A payment reported by a provider: Razorpay's payment entity or a PAYable notification."""
    return record(
        "Payment (provider)",
        "A payment that a provider reported (Razorpay, PAYable), shaped like the merchant API's "
        "payment, with the provider's own status.",
        {
            "id": _provider_id("payment"),
            "entity": choice(["payment"], "The kind of object."),
            "provider": _provider(),
            "provider_status": text(
                "The provider's own status (Razorpay: authorized, captured, refunded, failed; "
                "PAYable: its status message)."
            ),
            "order_id": nullable(text("The provider's order the payment belongs to.")),
            "invoice_id": nullable(
                text("What the payment pays: the provider's invoice, else its order (PAYable: invoiceNo).")
            ),
            "amount": provider_amount("The amount"),
            "currency": nullable(provider_currency()),
            "method": nullable(text("How the payer paid, in the provider's words (upi, card, netbanking…).")),
            "vpa": nullable(text("The payer's UPI address (UPI payments).")),
            "card_network": nullable(text("The card's network, lower case (card payments).")),
            "card_last4": nullable(text("The card's last four digits (card payments).")),
            "status": choice(statuses, "The payment's status in Paystream's terms."),
            "captured": boolean("Whether the money has been captured."),
            "amount_refunded": provider_amount("How much of it the provider has refunded"),
            "error_code": nullable(text("The provider's error code, when it failed.")),
            "error_description": nullable(text("The provider's explanation, when it failed.")),
            "salon_id": nullable(text("The salon the payment was for, when the payment names one.")),
            "created_at": timestamp("When Paystream first heard of the payment."),
            "updated_at": timestamp("When it last changed."),
        },
    )


def refund(status: str) -> JsonSchema:
    """A refund made through the merchant API (`POST /api/v1/payments/{id}/refunds`)."""
    processed = status == "processed"
    return record(
        "Refund (merchant API)",
        "A refund made through the merchant API or the dashboard, exactly as "
        "GET /api/v1/refunds/{id} returns it.",
        {
            "id": text("The refund's id.", pattern=r"^rfnd_[A-Za-z0-9]{16}$"),
            "entity": choice(["refund"], "The kind of object."),
            "merchant_id": text("Your merchant id."),
            "payment_id": text("The payment refunded.", pattern=r"^pay_[A-Za-z0-9]{16}$"),
            "amount": amount("The amount refunded", minimum=1),
            "currency": currency(),
            "status": choice([status], "The refund's status: pending, then processed."),
            "reason": nullable(text("The reason you gave.")),
            "processed_at": timestamp("When it was processed.") if processed else null("Not processed yet."),
            "created_at": timestamp("When the refund was created."),
            "updated_at": timestamp("When it last changed."),
        },
    )


def provider_refund(status: str) -> JsonSchema:
    """A refund reported by Razorpay."""
    return record(
        "Refund (provider)",
        "A refund that a provider reported (Razorpay), shaped like the merchant API's refund.",
        {
            "id": _provider_id("refund"),
            "entity": choice(["refund"], "The kind of object."),
            "provider": _provider(),
            "payment_id": nullable(text("The provider's id of the payment refunded.")),
            "amount": provider_amount("The amount refunded"),
            "currency": nullable(provider_currency()),
            "status": choice([status], "The refund's status: pending, then processed or failed."),
            "reason": nullable(text("The reason given (the refund's `notes.reason`).")),
            "speed_requested": nullable(text("The speed asked for (normal, optimum).")),
            "speed_processed": nullable(text("The speed the provider used (normal, instant).")),
            "processed_at": timestamp("When it was processed.")
            if status == "processed"
            else null("Not processed."),
            "created_at": timestamp("When Paystream first heard of the refund."),
            "updated_at": timestamp("When it last changed."),
        },
    )


def dispute(status: str) -> JsonSchema:
    """A dispute (chargeback) reported by Razorpay."""
    return record(
        "Dispute",
        "A dispute (chargeback) a payer raised with their bank, as the provider reported it.",
        {
            "id": _provider_id("dispute"),
            "entity": choice(["dispute"], "The kind of object."),
            "provider": _provider(),
            "payment_id": nullable(text("The provider's id of the disputed payment.")),
            "amount": nullable(provider_amount("The amount disputed")),
            "currency": nullable(provider_currency()),
            "reason_code": nullable(text("The network's reason code.")),
            "phase": nullable(text("The dispute's phase (chargeback, pre_arbitration, arbitration…).")),
            "status": choice(
                [status], "open, action_required, under_review, then won, lost or closed (final)."
            ),
            "respond_by": nullable(timestamp("The deadline for your evidence.")),
            "created_at": timestamp("When Paystream first heard of the dispute."),
            "updated_at": timestamp("When it last changed."),
        },
    )


def provider_order(status: str) -> JsonSchema:
    """An order at Razorpay."""
    return record(
        "Order (provider)",
        "An order at the provider (Razorpay).",
        {
            "id": _provider_id("order"),
            "entity": choice(["order"], "The kind of object."),
            "provider": _provider(),
            "amount": nullable(provider_amount("The order's amount")),
            "amount_paid": nullable(provider_amount("How much has been paid")),
            "currency": nullable(provider_currency()),
            "receipt": nullable(text("Your receipt number for the order.")),
            "status": choice([status], "The order's status."),
            "created_at": timestamp("When Paystream first heard of the order."),
            "updated_at": timestamp("When it last changed."),
        },
    )


def invoice(status: str) -> JsonSchema:
    """An invoice at Razorpay."""
    return record(
        "Invoice",
        "An invoice issued at the provider (Razorpay).",
        {
            "id": _provider_id("invoice"),
            "entity": choice(["invoice"], "The kind of object."),
            "provider": _provider(),
            "order_id": nullable(text("The provider's order behind the invoice.")),
            "payment_id": nullable(text("The provider's id of the payment that paid it.")),
            "currency": nullable(provider_currency()),
            "short_url": nullable(text("The link payers open to pay it.")),
            "amount": nullable(provider_amount("The invoice's amount")),
            "amount_paid": nullable(provider_amount("How much has been paid")),
            "amount_due": nullable(provider_amount("How much is still due")),
            "status": choice([status], "The invoice's status."),
            "updated_at": timestamp("When it last changed."),
        },
    )


def payment_link(status: str) -> JsonSchema:
    """A payment link at Razorpay."""
    return record(
        "Payment link",
        "A payment link created at the provider (Razorpay).",
        {
            "id": _provider_id("payment link"),
            "entity": choice(["payment_link"], "The kind of object."),
            "provider": _provider(),
            "order_id": nullable(text("The provider's order behind the link.")),
            "reference_id": nullable(text("Your reference for the link.")),
            "currency": nullable(provider_currency()),
            "short_url": nullable(text("The link payers open.")),
            "amount": nullable(provider_amount("The link's amount")),
            "amount_paid": nullable(provider_amount("How much has been paid")),
            "status": choice([status], "The link's status."),
            "updated_at": timestamp("When it last changed."),
        },
    )


def saved_card() -> JsonSchema:
    """A card saved by a PAYable tokenization: masked data only."""
    return record(
        "Saved card",
        "A card the payer chose to save (PAYable tokenization). Masked data only: never a card number.",
        {
            "masked_card_no": nullable(text("The card number as masked by the provider (411111xxxxxx1111).")),
            "expiry": nullable(text("The card's expiry, as the provider writes it (MM/YY).")),
            "scheme": nullable(text("The card scheme (VISA, MASTER…).")),
            "holder_name": nullable(text("The name on the card.")),
            "nickname": nullable(text("The payer's name for the card.")),
            "default_card": boolean("Whether it is the payer's default card."),
            "reference": nullable(text("The provider's reference for the saved card.")),
            "customer_id": nullable(text("Your customer id, as sent to the provider.")),
        },
    )


def endpoint() -> JsonSchema:
    """A webhook endpoint that Paystream turned off."""
    return record(
        "Webhook endpoint",
        "Your webhook endpoint, as it was when Paystream disabled it.",
        {
            "id": text("The endpoint's id.", pattern=r"^we_[0-9a-f]{32}$"),
            "url": text("The endpoint's URL."),
            "disabled_at": timestamp("When it was disabled."),
            "reason": text("Why it was disabled."),
        },
    )


def webhook_test() -> JsonSchema:
    return record(
        "Test webhook",
        "What POST /api/v1/webhooks/test sends.",
        {
            "message": text("A fixed message."),
            "merchant_id": text("Your merchant id."),
        },
    )
