"""The one input layer: what a byte from outside must look like before the platform uses it.

Headers, query parameters, path segments and every string inside a JSON document pass these checks
before any handler reads them, so no handler has to remember that a client can send NUL, other
control characters, bytes that are not UTF-8 (aiohttp hands those over as lone surrogates), or digits
that are not ASCII (`"²".isdigit()` is true and `int("١٢")` is 12). A value that fails is a 4xx naming
the field, never a 500 from a database or an encoder further down.

Error messages never repeat the value: it may be a secret or card data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from paystream.errors import BadRequestError, ValidationError

# C0 controls, DEL, and the lone surrogates that stand for bytes that were not UTF-8.
_NOT_TEXT = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")
# Free text may break lines; nothing else below 0x20 is text.
_NOT_FREE_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_ASCII_DIGITS = re.compile(r"[0-9]{1,18}")
# Printable ASCII without spaces: API keys, ids, tokens, signatures.
_TOKEN = re.compile(r"[\x21-\x7e]+")

MAX_QUERY_VALUE_LENGTH = 200


def is_text(value: str) -> bool:
    """No control characters and nothing that was not UTF-8."""
    return _NOT_TEXT.search(value) is None


def is_free_text(value: str) -> bool:
    """Like `is_text`, but tabs and line breaks are allowed (descriptions, reasons)."""
    return _NOT_FREE_TEXT.search(value) is None


def is_token(value: str, max_length: int = 255) -> bool:
    """Printable ASCII without spaces, 1 to `max_length` characters."""
    return 0 < len(value) <= max_length and _TOKEN.fullmatch(value) is not None


def ascii_int(raw: str) -> int | None:
    """The value of an optionally signed string of ASCII digits (at most 18), else None."""
    digits = raw[1:] if raw[:1] == "-" else raw
    if _ASCII_DIGITS.fullmatch(digits) is None:
        return None
    return int(raw)


def header_token(
    headers: Mapping[str, str], name: str, *, max_length: int = 255, required: bool = False
) -> str | None:
    """A header holding a token (printable ASCII, no spaces), or None when absent; 400 naming the
    header when it is present but malformed (or absent and `required`)."""
    value = headers.get(name)
    if value is None or value == "":
        if required:
            raise BadRequestError(f"the {name} header is required", field=name)
        return None
    if not is_token(value, max_length):
        raise BadRequestError(
            f"the {name} header must be 1 to {max_length} printable ASCII characters without spaces",
            field=name,
        )
    return value


def query_text(
    query: Mapping[str, str], name: str, *, max_length: int = MAX_QUERY_VALUE_LENGTH
) -> str | None:
    """A query parameter as text (None when absent or empty); 422 naming it when it holds control
    characters or bytes that were not UTF-8, or is longer than `max_length`."""
    value = query.get(name)
    if value is None or value == "":
        return None
    if not is_text(value):
        raise ValidationError(f"{name} must not contain control characters or invalid UTF-8", field=name)
    if len(value) > max_length:
        raise ValidationError(f"{name} must be at most {max_length} characters", field=name)
    return value


def query_int(query: Mapping[str, str], name: str, *, default: int, minimum: int, maximum: int) -> int:
    """An integer query parameter in ASCII digits, within bounds; 422 naming it otherwise."""
    raw = query.get(name)
    if raw is None or raw == "":
        return default
    value = ascii_int(raw)
    if value is None:
        raise ValidationError(f"{name} must be an integer", field=name)
    if not minimum <= value <= maximum:
        raise ValidationError(f"{name} must be between {minimum} and {maximum}", field=name)
    return value


def first_unclean_string(document: Any) -> str | None:
    """The path (`notes.k`, `items[2]`) of the first string in a JSON document, key or value, that
    holds a NUL or another control character other than tab and line breaks; None when all are
    clean. A bad key is named by its parent's path (`body` at the top). Iterative: a deeply nested
    document cannot exhaust the interpreter's stack."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            if not is_free_text(value):
                return path or "body"
        elif isinstance(value, dict):
            children = []
            for key, item in value.items():
                if not is_free_text(key):
                    return path or "body"
                children.append((f"{path}.{key}" if path else key, item))
            stack.extend(reversed(children))
        elif isinstance(value, list):
            stack.extend(reversed([(f"{path}[{index}]", item) for index, item in enumerate(value)]))
    return None


def contains_nul(document: Any) -> bool:
    """True when any string of a JSON document, key or value, holds a NUL (PostgreSQL's text and
    jsonb cannot store one)."""
    stack: list[Any] = [document]
    while stack:
        value = stack.pop()
        if isinstance(value, str):
            if "\x00" in value:
                return True
        elif isinstance(value, dict):
            for key, item in value.items():
                if "\x00" in key:
                    return True
                stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
    return False
