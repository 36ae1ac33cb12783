"""The event catalogue: every event a merchant can receive by webhook, one entry each.

Adding an event type that reaches merchants is one entry here: its description, the schema of its
`data` (built from `paystream.catalogue.objects`) and a sample `data`. A type that exists but is
never sent goes in `NOT_DELIVERED` with the reason. The suite fails while an `EventType` is in
neither, while a sample does not match its schema, and while a real webhook does not match.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from paystream.catalogue import objects, samples
from paystream.catalogue.fields import DRAFT, JsonSchema, one_of
from paystream.events import EventType
from paystream.resources import PAYMENT_STATUSES
from paystream.webhooks import webhook_body


@dataclass(frozen=True, slots=True)
class EventDescription:
    """One event type as merchants see it."""

    type: EventType
    description: str
    data_schema: JsonSchema
    sample_data: Mapping[str, Any]

    @property
    def name(self) -> str:
        return self.type.value

    def schema(self) -> JsonSchema:
        """The JSON Schema (draft 2020-12) of the event's `data`, standalone: a copy of its own, for
        other documents (an OpenAPI description, say) to embed or change."""
        return copy.deepcopy({"$schema": DRAFT, **self.data_schema, "title": f"{self.name} data"})

    def sample(self) -> dict[str, Any]:
        """A whole webhook body, built as the dispatcher builds every one, with the sample `data`."""
        body: dict[str, Any] = orjson.loads(webhook_body(self.name, samples.SAMPLE_TIME, self.sample_data))
        return body

    def to_resource(self) -> dict[str, Any]:
        return {
            "entity": "event_type",
            "name": self.name,
            "description": self.description,
            "schema": self.schema(),
            "sample": self.sample(),
        }


def carrying(*, optional: Iterable[str] = (), **objects_by_name: JsonSchema) -> JsonSchema:
    """The schema of a `data` that holds the named objects (each required unless `optional`)."""
    absent = set(optional)
    return {
        "type": "object",
        "required": [name for name in objects_by_name if name not in absent],
        "properties": objects_by_name,
    }


def _payment_data(*variants: JsonSchema) -> JsonSchema:
    return carrying(payment=one_of(*variants))


def _refund_data(*variants: JsonSchema) -> JsonSchema:
    return carrying(refund=one_of(*variants))


def _paid_with(name: str, bill: JsonSchema) -> JsonSchema:
    """An order, invoice or payment link, and the provider payment behind it when there is one."""
    return carrying(
        optional=("payment",), **{name: bill, "payment": objects.provider_payment(PAYMENT_STATUSES)}
    )


DECLINED = ("PAYMENT_DECLINED", "The payment was declined by the customer's bank (UPI)")

_ENTRIES = (
    # -- payments ------------------------------------------------------------------------------
    EventDescription(
        EventType.PAYMENT_CREATED,
        "A payment was created through the API or the checkout; `payment.pending` follows at once.",
        _payment_data(objects.payment("created", captured=False)),
        {"payment": samples.payment("created")},
    ),
    EventDescription(
        EventType.PAYMENT_PENDING,
        "The payment went to the payer's bank and waits for its answer.",
        _payment_data(objects.payment("pending", captured=False)),
        {"payment": samples.payment("pending")},
    ),
    EventDescription(
        EventType.PAYMENT_AUTHORIZED,
        "A provider authorised a payment: the money is blocked but not captured yet (Razorpay).",
        _payment_data(objects.provider_payment(["pending"])),
        {"payment": samples.provider_payment("pending", "authorized")},
    ),
    EventDescription(
        EventType.PAYMENT_SUCCESS,
        "A payment succeeded: settled by Paystream, or captured at a provider.",
        _payment_data(objects.payment("success", captured=False), objects.provider_payment(["success"])),
        {"payment": samples.payment("success")},
    ),
    EventDescription(
        EventType.PAYMENT_FAILED,
        "A payment failed; `error_code` and `error_description` say why.",
        _payment_data(objects.payment("failed", captured=False), objects.provider_payment(["failed"])),
        {"payment": samples.payment("failed", error=DECLINED)},
    ),
    EventDescription(
        EventType.PAYMENT_CAPTURED,
        "You captured a successful payment (`POST /api/v1/payments/{id}/capture`).",
        _payment_data(objects.payment("success", captured=True)),
        {"payment": samples.payment("success", captured=True)},
    ),
    # -- refunds -------------------------------------------------------------------------------
    EventDescription(
        EventType.REFUND_CREATED,
        "A refund was created and is pending.",
        _refund_data(objects.refund("pending"), objects.provider_refund("pending")),
        {"refund": samples.refund("pending")},
    ),
    EventDescription(
        EventType.REFUND_PROCESSED,
        "A refund was processed: the money is on its way back to the payer.",
        _refund_data(objects.refund("processed"), objects.provider_refund("processed")),
        {"refund": samples.refund("processed")},
    ),
    EventDescription(
        EventType.REFUND_FAILED,
        "A provider could not process a refund (Razorpay).",
        _refund_data(objects.provider_refund("failed")),
        {"refund": samples.provider_refund("failed")},
    ),
    EventDescription(
        EventType.REFUND_SPEED_CHANGED,
        "A provider changed how fast a pending refund is processed (Razorpay).",
        _refund_data(objects.provider_refund("pending")),
        {"refund": samples.provider_refund("pending", speed_processed="normal")},
    ),
    # -- disputes ------------------------------------------------------------------------------
    EventDescription(
        EventType.DISPUTE_CREATED,
        "A payer disputed a payment with their bank (a chargeback).",
        carrying(dispute=objects.dispute("open")),
        {"dispute": samples.dispute("open")},
    ),
    EventDescription(
        EventType.DISPUTE_ACTION_REQUIRED,
        "A dispute needs your evidence before `respond_by`.",
        carrying(dispute=objects.dispute("action_required")),
        {"dispute": samples.dispute("action_required")},
    ),
    EventDescription(
        EventType.DISPUTE_UNDER_REVIEW,
        "Your evidence is in and the bank is reviewing the dispute.",
        carrying(dispute=objects.dispute("under_review")),
        {"dispute": samples.dispute("under_review")},
    ),
    EventDescription(
        EventType.DISPUTE_WON,
        "A dispute was decided in your favour.",
        carrying(dispute=objects.dispute("won")),
        {"dispute": samples.dispute("won")},
    ),
    EventDescription(
        EventType.DISPUTE_LOST,
        "A dispute was decided in the payer's favour.",
        carrying(dispute=objects.dispute("lost")),
        {"dispute": samples.dispute("lost")},
    ),
    EventDescription(
        EventType.DISPUTE_CLOSED,
        "A dispute was closed without a decision (the payer withdrew it, say).",
        carrying(dispute=objects.dispute("closed")),
        {"dispute": samples.dispute("closed")},
    ),
    # -- orders, invoices, payment links -------------------------------------------------------
    EventDescription(
        EventType.ORDER_PAID,
        "An order at a provider was paid in full (Razorpay).",
        _paid_with("order", objects.provider_order("paid")),
        {"order": samples.provider_order(), "payment": samples.provider_payment("success", "captured")},
    ),
    EventDescription(
        EventType.INVOICE_PAID,
        "An invoice was paid in full (Razorpay).",
        _paid_with("invoice", objects.invoice("paid")),
        {"invoice": samples.invoice("paid"), "payment": samples.invoice_payment()},
    ),
    EventDescription(
        EventType.INVOICE_PARTIALLY_PAID,
        "Part of an invoice was paid (Razorpay).",
        _paid_with("invoice", objects.invoice("partially_paid")),
        {"invoice": samples.invoice("partially_paid"), "payment": samples.invoice_payment()},
    ),
    EventDescription(
        EventType.INVOICE_EXPIRED,
        "An invoice expired before it was paid in full (Razorpay).",
        _paid_with("invoice", objects.invoice("expired")),
        {"invoice": samples.invoice("expired")},
    ),
    EventDescription(
        EventType.PAYMENT_LINK_PAID,
        "A payment link was paid in full (Razorpay).",
        _paid_with("payment_link", objects.payment_link("paid")),
        {"payment_link": samples.payment_link("paid"), "payment": samples.link_payment()},
    ),
    EventDescription(
        EventType.PAYMENT_LINK_PARTIALLY_PAID,
        "Part of a payment link's amount was paid (Razorpay).",
        _paid_with("payment_link", objects.payment_link("partially_paid")),
        {"payment_link": samples.payment_link("partially_paid"), "payment": samples.link_payment()},
    ),
    EventDescription(
        EventType.PAYMENT_LINK_EXPIRED,
        "A payment link expired before it was paid in full (Razorpay).",
        _paid_with("payment_link", objects.payment_link("expired")),
        {"payment_link": samples.payment_link("expired")},
    ),
    EventDescription(
        EventType.PAYMENT_LINK_CANCELLED,
        "A payment link was cancelled (Razorpay).",
        _paid_with("payment_link", objects.payment_link("cancelled")),
        {"payment_link": samples.payment_link("cancelled")},
    ),
    # -- saved cards ---------------------------------------------------------------------------
    EventDescription(
        EventType.TOKEN_SAVED,
        "A payer saved their card while paying (PAYable tokenization; masked data only).",
        carrying(token=objects.saved_card()),
        {"token": samples.saved_card()},
    ),
    # -- your endpoint -------------------------------------------------------------------------
    EventDescription(
        EventType.WEBHOOK_TEST,
        "Sent when you ask for it (`POST /api/v1/webhooks/test`), whatever your endpoint subscribes to.",
        objects.webhook_test(),
        samples.webhook_test(),
    ),
    # Emitted by the dispatcher's recorder (`webhook_dispatcher.recorder.disabled_event`).
    EventDescription(
        EventType.ENDPOINT_DISABLED,
        "An endpoint of yours was disabled (410 Gone, or failing for days); sent to your other endpoints.",
        carrying(endpoint=objects.endpoint()),
        {"endpoint": samples.endpoint()},
    ),
)

# Event types that exist but never reach a merchant, and why.
NOT_DELIVERED: Mapping[EventType, str] = {
    event_type: "a provider's downtime concerns its payment methods, not one merchant's money: the "
    "payment processor stores it for operators and emits nothing"
    for event_type in (
        EventType.DOWNTIME_STARTED,
        EventType.DOWNTIME_UPDATED,
        EventType.DOWNTIME_RESOLVED,
    )
}


def _index(entries: Iterable[EventDescription]) -> dict[EventType, EventDescription]:
    indexed: dict[EventType, EventDescription] = {}
    for entry in entries:
        if entry.type in indexed or entry.type in NOT_DELIVERED:
            raise ValueError(f"{entry.name} is described twice, or also said never to be sent")
        indexed[entry.type] = entry
    return indexed


EVENT_CATALOGUE: Mapping[EventType, EventDescription] = _index(_ENTRIES)
