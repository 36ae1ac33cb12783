"""Card checks for card payments: Luhn, network by prefix, expiry, CVV shape.

Only the network and the last four digits leave this module. The number and the CVV are checked
and dropped: never stored, logged or echoed in an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from typing import Any

from paystream.errors import ValidationError
from paystream_api import validation

CARD_FIELD = "card"
_SEPARATORS = re.compile(r"[ -]")
_DIGITS = re.compile(r"[0-9]+")
_SMALL_NUMBER = re.compile(r"[0-9]{1,4}")
CARD_FIELDS = frozenset({"number", "expiry_month", "expiry_year", "cvv", "holder_name"})
MAX_YEARS_AHEAD = 25


@dataclass(frozen=True, slots=True)
class CardSummary:
    """All that is kept of a card."""

    network: str
    last4: str


def luhn_valid(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


# RuPay's IIN ranges (353/356 are RuPay-JCB co-branded); Discover's 6011/644-649/65 stay out.
_RUPAY_IIN_RANGES = (
    (508500, 508999),
    (606985, 607984),
    (608001, 608500),
    (652150, 653149),
    (810000, 829999),
)


def card_network(digits: str) -> str | None:
    """visa, mastercard, rupay or amex from the number's prefix (IIN ranges), else None."""
    if digits[:2] in ("34", "37"):
        return "amex"
    if digits[0] == "4":
        return "visa"
    two, four = int(digits[:2]), int(digits[:4])
    if 51 <= two <= 55 or 2221 <= four <= 2720:
        return "mastercard"
    iin = int(digits[:6])
    if any(low <= iin <= high for low, high in _RUPAY_IIN_RANGES) or digits[:3] in ("353", "356"):
        return "rupay"
    return None


_VALID_LENGTHS = {
    "visa": (13, 16, 19),
    "mastercard": (16,),
    "rupay": (16,),
    "amex": (15,),
}


def _field(name: str) -> str:
    return f"{CARD_FIELD}.{name}"


def _number(value: Any) -> tuple[str, str]:
    if not isinstance(value, str):
        raise ValidationError("card.number must be a string of digits", field=_field("number"))
    digits = _SEPARATORS.sub("", value)
    if not _DIGITS.fullmatch(digits) or not 12 <= len(digits) <= 19:
        raise ValidationError("card.number must be 12 to 19 digits", field=_field("number"))
    if not luhn_valid(digits):
        raise ValidationError("card.number is not a valid card number", field=_field("number"))
    network = card_network(digits)
    if network is None:
        raise ValidationError(
            "card.number is not a supported card (visa, mastercard, rupay, amex)", field=_field("number")
        )
    if len(digits) not in _VALID_LENGTHS[network]:
        raise ValidationError(f"card.number has the wrong length for {network}", field=_field("number"))
    return network, digits[-4:]


def _small_int(value: Any, name: str) -> int:
    """An integer of at most four digits, or a string of one to four ASCII digits (card forms often
    send "07"). Anything longer is refused before it is converted: `int()` of a few thousand digits
    is an error of its own, and no month or year needs more than four."""
    if isinstance(value, bool):
        raise ValidationError(f"card.{name} must be a number", field=_field(name))
    if isinstance(value, int) and 0 <= value <= 9999:
        return value
    if isinstance(value, str) and _SMALL_NUMBER.fullmatch(value.strip()):
        return int(value.strip())
    raise ValidationError(f"card.{name} must be a number of at most four digits", field=_field(name))


def _expiry(month_value: Any, year_value: Any, today: date) -> None:
    month = _small_int(month_value, "expiry_month")
    if not 1 <= month <= 12:
        raise ValidationError("card.expiry_month must be between 1 and 12", field=_field("expiry_month"))
    year = _small_int(year_value, "expiry_year")
    if year < 100:
        year += 2000
    if year > today.year + MAX_YEARS_AHEAD or year < 2000:
        raise ValidationError("card.expiry_year is not a plausible year", field=_field("expiry_year"))
    # A card is valid through the last day of its expiry month.
    if (year, month) < (today.year, today.month):
        raise ValidationError("the card has expired", field=_field("expiry_year"))


def _cvv(value: Any, network: str) -> None:
    expected = 4 if network == "amex" else 3
    if not isinstance(value, str) or not _DIGITS.fullmatch(value) or len(value) != expected:
        raise ValidationError(f"card.cvv must be a string of {expected} digits", field=_field("cvv"))


def validate_card(value: Any, today: date) -> CardSummary:
    """Check the `card` object of a payment; return the network and the last four digits."""
    if not isinstance(value, dict):
        raise ValidationError("card must be an object", field=CARD_FIELD)
    validation.reject_unknown(value, CARD_FIELDS, prefix=f"{CARD_FIELD}.")
    network, last4 = _number(validation.require(value, "number", prefix="card."))
    _expiry(
        validation.require(value, "expiry_month", prefix="card."),
        validation.require(value, "expiry_year", prefix="card."),
        today,
    )
    _cvv(validation.require(value, "cvv", prefix="card."), network)
    validation.text(
        validation.require(value, "holder_name", prefix="card."), _field("holder_name"), max_length=100
    )
    return CardSummary(network=network, last4=last4)
