"""The schemas of the request bodies and of the objects the API answers with.

Limits and enumerations come from the modules that enforce them (amounts, currencies, statuses,
field lengths), so the document cannot drift from the validation it describes.
"""

from __future__ import annotations

from paystream.events import MERCHANT_EVENT_TYPES
from paystream.notifier_tokens import BROWSER_TOKEN_TTL_S
from paystream.resources import PAYMENT_STATUSES, REFUND_STATUSES
from paystream.webhooks import ALL_EVENTS, WILDCARD_SUFFIX
from paystream_api import validation
from paystream_api.cards import CARD_FIELD
from paystream_api.openapi.builders import JsonObject, nullable, obj, schema_ref
from paystream_api.openapi.components import ERROR
from paystream_api.orders import RECEIPT_MAX_LENGTH
from paystream_api.payments import METHODS, ORDER_REFERENCE_MAX_LENGTH, VPA
from paystream_api.refunds import REASON_MAX_LENGTH
from paystream_api.webhook_api.events import MAX_FILTER_ENTRIES, WILDCARD_PREFIXES
from paystream_api.webhook_api.validation import DELIVERY_STATUSES

TIMESTAMP: JsonObject = {"type": "string", "format": "date-time", "example": "2026-05-01T10:00:00.123Z"}
ORDER_STATUSES = ("created", "attempted", "paid")
CARD_NETWORKS = ("visa", "mastercard", "rupay", "amex")

AMOUNT: JsonObject = {
    "type": "integer",
    "minimum": 1,
    "maximum": validation.MAX_AMOUNT,
    "description": "Minor units (paise)",
    "example": 50000,
}
CURRENCY: JsonObject = {
    "type": "string",
    "description": "An ISO 4217 code (case-insensitive); INR when absent",
    "enum": sorted(validation.ISO_4217_CURRENCIES),
    "example": "INR",
}
NOTE_VALUE: JsonObject = {
    "anyOf": [
        {"type": "string", "maxLength": validation.NOTES_MAX_LENGTH},
        {"type": "number"},
        {"type": "boolean"},
    ]
}
NOTES: JsonObject = {
    "type": "object",
    "maxProperties": validation.NOTES_MAX_KEYS,
    "propertyNames": {"minLength": 1, "maxLength": validation.NOTES_MAX_LENGTH},
    "additionalProperties": NOTE_VALUE,
    "description": "Free-form key/value notes",
}
LINK: JsonObject = {
    "type": "string",
    "format": "uri",
    "maxLength": validation.LINK_MAX_LENGTH,
    "description": "An absolute http(s) URL without user name or password",
    "example": "https://shop.example.com/thanks",
}
NOTIFIER_GRANT: JsonObject = obj(
    {
        "url": {"type": "string", "description": "The notifier's public URL (Socket.IO)"},
        "token": {"type": "string", "description": "A token that may watch this order only"},
        "expires_in": {"type": "integer", "description": "Seconds", "example": BROWSER_TOKEN_TTL_S},
    }
)

# Request bodies ---------------------------------------------------------------------------------

NEW_ORDER: JsonObject = obj(
    {
        "amount": AMOUNT,
        "currency": nullable(CURRENCY),
        "receipt": nullable({"type": "string", "minLength": 1, "maxLength": RECEIPT_MAX_LENGTH}),
        "notes": nullable(NOTES),
        "return_url": nullable(LINK),
    },
    optional=("currency", "receipt", "notes", "return_url"),
)
CARD: JsonObject = obj(
    {
        "number": {
            "type": "string",
            "description": "12 to 19 digits (spaces and dashes allowed), Luhn-valid; visa, mastercard, "
            "rupay or amex. Never stored: only the network and the last 4 digits are kept.",
            "example": "4111111111111111",
        },
        "expiry_month": {
            "anyOf": [
                {"type": "integer", "minimum": 1, "maximum": 12},
                {"type": "string", "pattern": "^[0-9]{1,4}$"},
            ],
            "example": 12,
        },
        "expiry_year": {
            "anyOf": [
                {"type": "integer", "minimum": 0, "maximum": 9999},
                {"type": "string", "pattern": "^[0-9]{1,4}$"},
            ],
            "description": "Four digits, or two (20xx); the card must not have expired",
            "example": 2030,
        },
        "cvv": {"type": "string", "pattern": "^[0-9]{3,4}$", "description": "4 digits for amex, else 3"},
        "holder_name": {"type": "string", "minLength": 1, "maxLength": 100},
    },
    description=f"The `{CARD_FIELD}` of a card payment",
)
VPA_SCHEMA: JsonObject = {
    "type": "string",
    "pattern": f"^{VPA.pattern}$",
    "description": "A UPI address, name@bank",
    "example": "asha@okbank",
}


def _payment_request(*, amount_required: bool) -> JsonObject:
    common: JsonObject = {
        "order_id": {
            "type": "string",
            "minLength": 1,
            "maxLength": ORDER_REFERENCE_MAX_LENGTH,
            "description": "One of the merchant's orders (the amount must match it, and a paid order "
            "takes no payment), or the merchant's own reference",
        },
        "amount": AMOUNT,
        "currency": nullable(CURRENCY),
    }
    optional = ["currency"] if amount_required else ["amount", "currency"]
    upi, card = METHODS
    return {
        "oneOf": [
            obj(
                {**common, "method": {"const": upi}, "vpa": VPA_SCHEMA, "card": {}},
                optional=[*optional, "card"],
                title="UPI payment",
            ),
            obj(
                {**common, "method": {"const": card}, "card": schema_ref("CardInput"), "vpa": {}},
                optional=[*optional, "vpa"],
                title="Card payment",
            ),
        ]
    }


NEW_REFUND: JsonObject = obj(
    {
        "amount": {
            **AMOUNT,
            "description": "At most the refundable amount (the payment's, less its refunds)",
        },
        "reason": nullable({"type": "string", "minLength": 1, "maxLength": REASON_MAX_LENGTH}),
    },
    optional=("reason",),
)
CAPTURE: JsonObject = obj(
    {"amount": {**AMOUNT, "description": "When sent, must equal the payment's amount"}}, optional=("amount",)
)
WEBHOOK_EVENTS: JsonObject = {
    "type": "array",
    "minItems": 1,
    "maxItems": MAX_FILTER_ENTRIES,
    "items": {
        "type": "string",
        "enum": [
            ALL_EVENTS,
            *(t.value for t in MERCHANT_EVENT_TYPES),
            *sorted(prefix + WILDCARD_SUFFIX for prefix in WILDCARD_PREFIXES),
        ],
    },
    "description": '`["*"]` (every type, including ones added later; not combined with others) or a list '
    "of event types and `<prefix>.*` wildcards (`payment.*` takes every event whose name starts with "
    "`payment.`)",
}
WEBHOOK_CONFIG_INPUT: JsonObject = obj(
    {
        "url": {
            "type": "string",
            "minLength": 1,
            "description": "http(s); every address its host resolves to must be allowed by the outbound "
            "policy (no private, loopback or metadata addresses unless the operator allows them)",
            "example": "https://shop.example.com/webhooks/paystream",
        },
        "events": nullable(WEBHOOK_EVENTS),
        "enabled": {"type": "boolean", "default": True},
    },
    optional=("events", "enabled"),
)
# Objects the API answers with -------------------------------------------------------------------

MERCHANT: JsonObject = obj(
    {
        "id": {"type": "string"},
        "name": {"type": "string"},
        "email": {"type": "string"},
        "key": {"type": "string", "description": "The API key (never a secret)"},
    }
)
ORDER: JsonObject = obj(
    {
        "id": {"type": "string", "example": "order_0123456789abcdef"},
        "entity": {"const": "order"},
        "merchant_id": {"type": "string"},
        "amount": AMOUNT,
        "amount_paid": {"type": "integer", "minimum": 0},
        "amount_due": {"type": "integer"},
        "currency": {"type": "string"},
        "receipt": {"type": ["string", "null"]},
        "notes": {"type": "object", "additionalProperties": NOTE_VALUE},
        "status": {"type": "string", "enum": list(ORDER_STATUSES)},
        "attempts": {"type": "integer", "minimum": 0},
        "return_url": {"type": ["string", "null"]},
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }
)
PAYMENT: JsonObject = obj(
    {
        "id": {"type": "string", "example": "pay_0123456789abcdef"},
        "entity": {"const": "payment"},
        "merchant_id": {"type": "string"},
        "order_id": {"type": "string"},
        "amount": AMOUNT,
        "currency": {"type": "string"},
        "status": {"type": "string", "enum": list(PAYMENT_STATUSES)},
        "method": {"type": "string", "enum": list(METHODS)},
        "vpa": {"type": ["string", "null"]},
        "card_network": nullable({"type": "string", "enum": list(CARD_NETWORKS)}),
        "card_last4": {"type": ["string", "null"], "pattern": "^[0-9]{4}$"},
        "captured": {"type": "boolean"},
        "captured_at": nullable(TIMESTAMP),
        "amount_refunded": {"type": "integer", "minimum": 0},
        "refund_status": nullable({"type": "string", "enum": ["partial", "full"]}),
        "error_code": {"type": ["string", "null"]},
        "error_description": {"type": ["string", "null"]},
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }
)
REFUND: JsonObject = obj(
    {
        "id": {"type": "string", "example": "rfnd_0123456789abcdef"},
        "entity": {"const": "refund"},
        "merchant_id": {"type": "string"},
        "payment_id": {"type": "string"},
        "amount": AMOUNT,
        "currency": {"type": "string"},
        "status": {"type": "string", "enum": list(REFUND_STATUSES)},
        "reason": {"type": ["string", "null"]},
        "processed_at": nullable(TIMESTAMP),
        "created_at": TIMESTAMP,
        "updated_at": TIMESTAMP,
    }
)


def collection(item: str) -> JsonObject:
    """A page of objects, newest first, with how many match in all."""
    return obj(
        {
            "entity": {"const": "collection"},
            "data": {"type": "array", "items": schema_ref(item)},
            "count": {"type": "integer", "minimum": 0, "description": "Objects on this page"},
            "total": {"type": "integer", "minimum": 0, "description": "Objects that match in all"},
            "limit": {"type": "integer"},
            "offset": {"type": "integer"},
        }
    )


TIMELINE: JsonObject = obj(
    {
        "entity": {"const": "collection"},
        "data": {
            "type": "array",
            "items": obj(
                {
                    "id": {
                        "type": ["string", "null"],
                        "description": "The event id; null when rebuilt from records",
                    },
                    "type": {"type": "string", "example": "payment.created"},
                    "occurred_at": TIMESTAMP,
                    "object": {
                        "type": "object",
                        "description": "The payment's or refund's fields at that event",
                        "properties": {
                            "entity": {"type": "string", "enum": ["payment", "refund", "dispute"]}
                        },
                    },
                }
            ),
        },
        "count": {"type": "integer", "minimum": 0},
        "source": {
            "type": "string",
            "enum": ["events", "record"],
            "description": "`record` when the events are past retention and the timeline is rebuilt",
        },
    }
)
WEBHOOK_CONFIG: JsonObject = obj(
    {
        "url": {"type": ["string", "null"]},
        "events": {"type": "array", "items": {"type": "string"}},
        "enabled": {"type": "boolean"},
        "disabled_reason": {"type": ["string", "null"]},
        "secret": {"type": "string", "description": "The current signing secret (`whsec_...`)"},
        "previous_secret_expires_at": nullable(TIMESTAMP),
        "created_at": nullable(TIMESTAMP),
        "updated_at": nullable(TIMESTAMP),
    }
)
WEBHOOK_DELIVERY: JsonObject = obj(
    {
        "id": {"type": "string", "description": "Also the `webhook-id` header of every attempt"},
        "endpoint_id": {"type": "string", "description": "The endpoint it goes to (`we_...`)"},
        "event": {"type": "string", "example": "payment.success"},
        "payload": {
            "type": "object",
            "description": "The exact body that was (or will be) sent",
            "required": ["event", "timestamp", "data"],
            "properties": {
                "event": {"type": "string"},
                "timestamp": {"type": "integer", "description": "Unix seconds"},
                "data": {"type": "object"},
            },
        },
        "status": {"type": "string", "enum": list(DELIVERY_STATUSES)},
        "attempts": {"type": "integer", "minimum": 0},
        "last_attempt_at": nullable(TIMESTAMP),
        "next_retry_at": nullable(TIMESTAMP),
        "response_code": {"type": ["integer", "null"]},
        "response_body": {"type": ["string", "null"]},
        "duration_ms": {"type": ["integer", "null"]},
        "error": {"type": ["string", "null"]},
        "created_at": TIMESTAMP,
    }
)
WEBHOOK_DELIVERIES: JsonObject = obj(
    {
        "data": {"type": "array", "items": schema_ref("WebhookDelivery")},
        "total": {"type": "integer", "minimum": 0},
        "limit": {"type": "integer"},
        "offset": {"type": "integer"},
    }
)
CHECKOUT_PAYMENT_PROPERTIES: JsonObject = {
    "id": {"type": "string"},
    "entity": {"const": "payment"},
    "order_id": {"type": "string"},
    "amount": AMOUNT,
    "currency": {"type": "string"},
    "status": {"type": "string", "enum": list(PAYMENT_STATUSES)},
    "method": {"type": "string", "enum": list(METHODS)},
    "card_network": nullable({"type": "string", "enum": list(CARD_NETWORKS)}),
    "card_last4": {"type": ["string", "null"]},
    "error_code": {"type": ["string", "null"]},
    "error_description": {"type": ["string", "null"]},
    "created_at": TIMESTAMP,
}
CHECKOUT_PAYMENT: JsonObject = obj(
    CHECKOUT_PAYMENT_PROPERTIES, description="The payer's view of a payment (never the VPA)"
)
CHECKOUT_PAYMENT_CREATED: JsonObject = obj(
    {**CHECKOUT_PAYMENT_PROPERTIES, "notifier": schema_ref("NotifierGrant")},
    description="The payer's view of the new payment, and a fresh notifier grant for its order",
)
CHECKOUT_ORDER: JsonObject = obj(
    {
        "id": {"type": "string"},
        "entity": {"const": "order"},
        "amount": AMOUNT,
        "amount_due": {"type": "integer"},
        "currency": {"type": "string"},
        "status": {"type": "string", "enum": list(ORDER_STATUSES)},
        "receipt": {"type": ["string", "null"]},
        "return_url": {"type": ["string", "null"]},
        "test_mode": {"type": "boolean", "description": "No real money moves"},
        "merchant": obj({"name": {"type": "string"}}),
        "notifier": schema_ref("NotifierGrant"),
    },
    description="The order as the hosted checkout shows it (never its notes or the merchant's ids)",
)
SCHEMAS: dict[str, JsonObject] = {
    "Error": ERROR,
    "Merchant": MERCHANT,
    "NewOrder": NEW_ORDER,
    "Order": ORDER,
    "CardInput": CARD,
    "NewPayment": _payment_request(amount_required=True),
    "NewCheckoutPayment": _payment_request(amount_required=False),
    "Payment": PAYMENT,
    "PaymentCollection": collection("Payment"),
    "Capture": CAPTURE,
    "NewRefund": NEW_REFUND,
    "Refund": REFUND,
    "RefundCollection": collection("Refund"),
    "PaymentTimeline": TIMELINE,
    "WebhookConfigInput": WEBHOOK_CONFIG_INPUT,
    "WebhookConfig": WEBHOOK_CONFIG,
    "WebhookDelivery": WEBHOOK_DELIVERY,
    "WebhookDeliveryList": WEBHOOK_DELIVERIES,
    "NotifierGrant": NOTIFIER_GRANT,
    "CheckoutOrder": CHECKOUT_ORDER,
    "CheckoutPayment": CHECKOUT_PAYMENT,
    "CheckoutPaymentCreated": CHECKOUT_PAYMENT_CREATED,
}
