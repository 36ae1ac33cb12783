"""Public object ids: a type prefix and 16 random alphanumerics (`pay_`, `order_`, `rfnd_`)."""

from __future__ import annotations

import re
import secrets
import string

ID_ALPHABET = string.ascii_letters + string.digits
ID_RANDOM_LENGTH = 16

ORDER_PREFIX = "order_"
PAYMENT_PREFIX = "pay_"
REFUND_PREFIX = "rfnd_"


def new_id(prefix: str) -> str:
    """`prefix` + 16 characters from a CSPRNG (62^16 ids: guessing one is hopeless)."""
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_RANDOM_LENGTH))


def id_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(re.escape(prefix) + r"[A-Za-z0-9]{16}")


ORDER_ID = id_pattern(ORDER_PREFIX)
PAYMENT_ID = id_pattern(PAYMENT_PREFIX)
REFUND_ID = id_pattern(REFUND_PREFIX)


def is_id(pattern: re.Pattern[str], value: str) -> bool:
    return pattern.fullmatch(value) is not None
