"""PAYable IPG notifications: a transaction's outcome, and a saved card on tokenization.

`statusCode` 1 is a successful transaction; anything else failed, with its code and message. The
checkValue covers `statusCode` but not `statusMessage`, so the message never decides. A transaction ranks `failed` < `success`: a late failure notice never undoes a
success. With `paymentType` 3 a success also saves the card token (masked data only) and emits
`token.saved` when the token is new. The salon is `<digits>` of a `customerRefNo` of the form
`SALON<digits>` (so `SALON42` is salon "42"); any other reference means no salon, never a default.
Amounts arrive in major units ("1500.00") and are kept in minor units (150000), two decimals.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from payment_processor.provider_events.fields import BIGINT_MAX, identifier, text
from payment_processor.provider_events.payments import PAYMENTS, emit_payment_change
from payment_processor.provider_events.transitions import Advance, PlannedHandler, Transition
from payment_processor.provider_events.work import Rejected, Work
from paystream.events import EventType

PAYABLE_STATUS = {"failed": 10, "success": 30}
TOKENIZATION_PAYMENT_TYPE = "3"
SALON_REFERENCE = re.compile(r"SALON(\d{1,18})", re.IGNORECASE)
UNMASKED_PAN = re.compile(r"\d{12,}")
MINOR_UNITS = Decimal(100)
MAX_AMOUNT = Decimal(BIGINT_MAX) / MINOR_UNITS


def salon_from_reference(customer_ref: Any) -> str | None:
    """`SALON42` -> "42"; anything else -> None."""
    if not isinstance(customer_ref, str):
        return None
    match = SALON_REFERENCE.fullmatch(customer_ref.strip())
    return match.group(1) if match else None


def minor_units(amount: Any) -> int:
    """A PAYable amount in minor units ("1500.00" -> 150000); `Rejected` for anything but a positive
    amount with at most two decimals whose minor units fit a `bigint`."""
    if isinstance(amount, bool) or not isinstance(amount, str | int | float):
        raise Rejected("payableAmount is not an amount")
    try:
        value = Decimal(str(amount).strip())
    except InvalidOperation:
        raise Rejected("payableAmount is not an amount") from None
    if not value.is_finite() or value <= 0:
        raise Rejected("payableAmount is not a positive amount")
    if value > MAX_AMOUNT:  # checked first: quantize() cannot hold more digits than its context
        raise Rejected("payableAmount is out of range")
    if value != value.quantize(Decimal("0.01")):
        raise Rejected("payableAmount has more than two decimals")
    return int(value * MINOR_UNITS)


def masked(value: Any) -> str | None:
    """A card number as PAYable masks it; re-masked to the last four digits if it ever is not."""
    shown = text(value)
    if shown is None:
        return None
    if UNMASKED_PAN.search(re.sub(r"[\s-]", "", shown)):
        digits = re.sub(r"\D", "", shown)
        return "*" * (len(digits) - 4) + digits[-4:]
    return shown


def _code(value: Any) -> str:
    return str(value).strip() if value is not None else ""


def _transaction_and_invoice(note: Mapping[str, Any]) -> tuple[str, str]:
    transaction_id = identifier(note.get("payableTransactionId"), "payableTransactionId")
    invoice_no = identifier(note.get("invoiceNo"), "invoiceNo")
    if transaction_id is None or invoice_no is None:
        raise Rejected("payableTransactionId and invoiceNo are required")
    return transaction_id, invoice_no


def plan_notification(work: Work) -> Advance:
    """The payment's move: to `success` or `failed`, as the signed `statusCode` says."""
    note: Mapping[str, Any] = work.event.payload
    transaction_id, invoice_no = _transaction_and_invoice(note)
    # The checkValue covers statusCode, not statusMessage: only the signed field decides.
    success = _code(note.get("statusCode")) == "1"
    status = "success" if success else "failed"
    card_number = masked(note.get("cardNumber"))
    scheme = text(note.get("paymentScheme"))
    last4 = re.sub(r"\D", "", card_number or "")[-4:] or None
    return Advance(
        PAYMENTS,
        transaction_id,
        status=status,
        rank=PAYABLE_STATUS[status],
        columns={
            "provider_status": _code(note.get("statusMessage")) or _code(note.get("statusCode")),
            "invoice_key": invoice_no,
            "salon_id": salon_from_reference(note.get("customerRefNo")),
            "order_id": invoice_no,
            "invoice_id": invoice_no,
            "amount": minor_units(note.get("payableAmount")),
            "currency": text(note.get("payableCurrency")),
            "method": "card" if card_number else text(note.get("paymentMethod")),
            "captured": success,
            "error_code": None if success else _code(note.get("statusCode")),
            "error_description": None if success else text(note.get("statusMessage")),
            "entity": {
                "payableOrderId": text(note.get("payableOrderId")),
                "payableTransactionId": transaction_id,
                "paymentType": text(note.get("paymentType")),
                "paymentMethod": text(note.get("paymentMethod")),
                "card": {"network": scheme, "last4": last4, "name": text(note.get("cardHolderName"))},
                "customerRefNo": text(note.get("customerRefNo")),
                "customerId": text(note.get("customerId")),
                "custom1": text(note.get("custom1")),
                "custom2": text(note.get("custom2")),
            },
        },
    )


async def follow_notification(work: Work, transition: Transition) -> None:
    """The payment's event, and on a tokenization's success the saved card."""
    note: Mapping[str, Any] = work.event.payload
    await emit_payment_change(work, transition)
    success = _code(note.get("statusCode")) == "1"
    if success and _code(note.get("paymentType")) == TOKENIZATION_PAYMENT_TYPE:
        _, invoice_no = _transaction_and_invoice(note)
        await save_token(work, note, transition.row["salon_id"], invoice_no)


handle_notification = PlannedHandler(plan_notification, follow_notification)


async def save_token(work: Work, note: Mapping[str, Any], salon_id: str | None, invoice_no: str) -> None:
    token = note.get("token")
    token_id = identifier(token.get("tokenId"), "token.tokenId") if isinstance(token, Mapping) else None
    if not isinstance(token, Mapping) or token_id is None:
        work.note("tokenization succeeded without a token object; no card saved")
        return
    saved = {
        "masked_card_no": masked(token.get("maskedCardNo")) or masked(note.get("cardNumber")),
        "expiry": text(token.get("exp")),
        "scheme": text(note.get("paymentScheme")),
        "holder_name": text(note.get("cardHolderName")),
        "nickname": text(token.get("nickname")),
        "default_card": token.get("defaultCard") in (True, 1, "1", "true", "TRUE", "True"),
        "reference": text(token.get("reference")),
        "customer_id": identifier(note.get("customerId"), "customerId"),
    }
    inserted = await work.conn.fetchval(
        """INSERT INTO saved_card_tokens
               (provider, token_id, merchant_id, salon_id, customer_id, masked_card_no, expiry, scheme,
                holder_name, nickname, default_card, reference)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
           ON CONFLICT (provider, merchant_id, token_id) DO UPDATE SET
               masked_card_no = EXCLUDED.masked_card_no, expiry = EXCLUDED.expiry,
               nickname = EXCLUDED.nickname, default_card = EXCLUDED.default_card, updated_at = now()
           RETURNING (xmax = 0)""",
        work.event.provider,
        token_id,
        work.event.merchant_id,
        salon_id,
        saved["customer_id"],
        saved["masked_card_no"],
        saved["expiry"],
        saved["scheme"],
        saved["holder_name"],
        saved["nickname"],
        saved["default_card"],
        saved["reference"],
    )
    if not inserted:
        return
    work.change("saved_card", str(saved["masked_card_no"] or ""), None, "saved")
    await work.emit(EventType.TOKEN_SAVED, {"token": saved}, invoice_id=invoice_no, salon_id=salon_id)
