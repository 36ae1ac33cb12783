"""Field validation for merchant API requests: every failure is a 422 that names the field.

Error descriptions never repeat the submitted value (it may be card data).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from yarl import URL

from paystream.errors import ValidationError

# Amounts are integers in minor units. The ceiling (100 crore rupees in paise) rejects absurd
# values, stays far inside bigint and inside JavaScript's exact integers.
MAX_AMOUNT = 10_000_000_000
DEFAULT_CURRENCY = "INR"

# Active ISO 4217 codes.
_ISO_4217_CODES = """
    AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BHD BIF BMD BND BOB BRL BSD BTN BWP BYN
    BZD CAD CDF CHF CLP CNY COP CRC CUP CVE CZK DJF DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS
    GIP GMD GNF GTQ GYD HKD HNL HTG HUF IDR ILS INR IQD IRR ISK JMD JOD JPY KES KGS KHR KMF KPW KRW
    KWD KYD KZT LAK LBP LKR LRD LSL LYD MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MYR MZN NAD
    NGN NIO NOK NPR NZD OMR PAB PEN PGK PHP PKR PLN PYG QAR RON RSD RUB RWF SAR SBD SCR SDG SEK SGD
    SHP SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TND TOP TRY TTD TWD TZS UAH UGX USD UYU UZS VES
    VND VUV WST XAF XCD XCG XOF XPF YER ZAR ZMW ZWG
"""
ISO_4217_CURRENCIES = frozenset(_ISO_4217_CODES.split())

_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")
NOTES_MAX_KEYS = 15
LINK_MAX_LENGTH = 2048
NOTES_MAX_LENGTH = 256


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number with a fraction"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def reject_unknown(fields: Mapping[str, Any], known: frozenset[str], *, prefix: str = "") -> None:
    """Unknown parameters are refused, never ignored (as Stripe does): a misspelt optional field
    would otherwise change nothing and say nothing."""
    unknown = sorted(name for name in fields if name not in known)
    if unknown:
        raise ValidationError(f"{prefix}{unknown[0]} is not a known parameter", field=f"{prefix}{unknown[0]}")


def require(fields: Mapping[str, Any], name: str, *, prefix: str = "") -> Any:
    value = fields.get(name)
    if value is None:
        raise ValidationError(f"{prefix}{name} is required", field=f"{prefix}{name}")
    return value


def amount(value: Any, field: str = "amount") -> int:
    """A positive integer amount in minor units: floats, strings, booleans, zero, negatives and
    absurd values are refused."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(
            f"{field} must be an integer in minor units (paise), not a {_type_name(value)}", field=field
        )
    if value < 1:
        raise ValidationError(f"{field} must be at least 1", field=field)
    if value > MAX_AMOUNT:
        raise ValidationError(f"{field} must be at most {MAX_AMOUNT}", field=field)
    return value


def currency(value: Any, field: str = "currency") -> str:
    """An ISO 4217 code (upper-cased); `None` means the default, INR."""
    if value is None:
        return DEFAULT_CURRENCY
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be an ISO 4217 currency code", field=field)
    code = value.strip().upper()
    if code not in ISO_4217_CURRENCIES:
        raise ValidationError(f"{field} must be an ISO 4217 currency code", field=field)
    return code


def text(value: Any, field: str, *, max_length: int, min_length: int = 1) -> str:
    """A string without control characters, trimmed, between `min_length` and `max_length`."""
    if not isinstance(value, str):
        raise ValidationError(f"{field} must be a string", field=field)
    stripped = value.strip()
    if _CONTROL_CHARACTERS.search(stripped):
        raise ValidationError(f"{field} must not contain control characters", field=field)
    if len(stripped) < min_length:
        raise ValidationError(f"{field} must not be empty", field=field)
    if len(stripped) > max_length:
        raise ValidationError(f"{field} must be at most {max_length} characters", field=field)
    return stripped


def optional_text(value: Any, field: str, *, max_length: int) -> str | None:
    return None if value is None else text(value, field, max_length=max_length)


def notes(value: Any, field: str = "notes") -> dict[str, str | int | float | bool]:
    """Free-form key/value notes: at most 15 keys, short scalar values (control characters are
    refused for the whole body by `request_body.parse_json_object`)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValidationError(f"{field} must be an object of key/value pairs", field=field)
    if len(value) > NOTES_MAX_KEYS:
        raise ValidationError(f"{field} may have at most {NOTES_MAX_KEYS} keys", field=field)
    cleaned: dict[str, str | int | float | bool] = {}
    for key, item in value.items():
        if not key or len(key) > NOTES_MAX_LENGTH:
            raise ValidationError(f"{field} keys must be 1 to {NOTES_MAX_LENGTH} characters", field=field)
        if isinstance(item, str):
            if len(item) > NOTES_MAX_LENGTH:
                raise ValidationError(
                    f"{field}.{key} must be at most {NOTES_MAX_LENGTH} characters", field=f"{field}.{key}"
                )
        elif not isinstance(item, int | float | bool):
            raise ValidationError(
                f"{field}.{key} must be a string, number or boolean", field=f"{field}.{key}"
            )
        cleaned[key] = item
    return cleaned


def choice(value: Any, field: str, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValidationError(f"{field} must be one of: {', '.join(options)}", field=field)
    return value


def link(value: Any, field: str) -> str:
    """An absolute http(s) URL a browser is sent to (a return link): no other scheme, no
    credentials, no backslashes or spaces (browsers and yarl read those differently), a host."""
    url_text = text(value, field, max_length=LINK_MAX_LENGTH)
    problem = f"{field} must be an absolute http or https URL"
    if not url_text.lower().startswith(("http://", "https://")) or any(c in url_text for c in "\\ "):
        raise ValidationError(problem, field=field)
    try:
        url = URL(url_text)
    except ValueError:
        raise ValidationError(problem, field=field) from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError(problem, field=field)
    if url.user is not None or url.password is not None:
        raise ValidationError(f"{field} must not hold a user name or password", field=field)
    return url_text
