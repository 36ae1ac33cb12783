"""PAYable IPG's `checkValue`: the one place that knows the formula.

    checkValue = UPPER(HEX(SHA-512(
        merchantKey|payableOrderId|payableTransactionId|payableAmount|payableCurrency|invoiceNo|statusCode|
        + UPPER(HEX(SHA-512(merchant token)))
    )))

Providers revise such schemes; a revision is a new `CheckValueScheme` here (fields, separator,
digest), nothing else. Field values are used as sent: strings as they are, integers in decimal,
other numbers with two decimals (an amount sent as a JSON number), absent fields as "".
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CheckValueScheme:
    fields: tuple[str, ...]
    separator: str = "|"
    algorithm: str = "sha512"

    def message(self, notification: Mapping[str, Any], token_digest: str) -> bytes:
        parts = [field_text(notification.get(name)) for name in self.fields]
        return (self.separator.join(parts) + self.separator + token_digest).encode()

    def compute(self, notification: Mapping[str, Any], token_digest: str) -> str:
        """`token_digest` is the upper-case hex digest of the merchant token (precomputed per account)."""
        return hashlib.new(self.algorithm, self.message(notification, token_digest)).hexdigest().upper()

    def verify(self, notification: Mapping[str, Any], token_digest: str, check_value: str) -> bool:
        expected = self.compute(notification, token_digest).encode()
        return hmac.compare_digest(expected, check_value.strip().upper().encode("utf-8", "replace"))


def field_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


PAYABLE_CHECK_VALUE = CheckValueScheme(
    fields=(
        "merchantKey",
        "payableOrderId",
        "payableTransactionId",
        "payableAmount",
        "payableCurrency",
        "invoiceNo",
        "statusCode",
    )
)
