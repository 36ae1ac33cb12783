"""Building blocks of the catalogue's JSON Schemas (draft 2020-12), so that an object's schema reads
as the list of its fields.

The schemas are open (no `additionalProperties: false`): a receiver must ignore fields it does not
know, and adding one is not a breaking change. The suite validates real webhooks against them with
every object closed, so a field the platform sends but the catalogue does not describe fails it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

JsonSchema = dict[str, Any]

DRAFT = "https://json-schema.org/draft/2020-12/schema"
# RFC 3339 in UTC as the platform writes it: whole seconds or a fraction of up to six digits, `Z`.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$"
CURRENCY_PATTERN = r"^[A-Z]{3}$"


def text(description: str, **keywords: Any) -> JsonSchema:
    return {"type": "string", "description": description, **keywords}


def integer(description: str, **keywords: Any) -> JsonSchema:
    return {"type": "integer", "description": description, **keywords}


def boolean(description: str, *, const: bool | None = None) -> JsonSchema:
    schema: JsonSchema = {"type": "boolean", "description": description}
    if const is not None:
        schema["const"] = const
    return schema


def null(description: str) -> JsonSchema:
    """Always null (for this event type)."""
    return {"type": "null", "description": description}


def choice(values: Sequence[str], description: str) -> JsonSchema:
    """One of `values`; a single value is a `const` (what one event type always says)."""
    if len(values) == 1:
        return {"type": "string", "const": values[0], "description": description}
    return {"type": "string", "enum": list(values), "description": description}


def timestamp(description: str) -> JsonSchema:
    return {"type": "string", "format": "date-time", "pattern": TIMESTAMP_PATTERN, "description": description}


def amount(description: str, *, minimum: int = 0) -> JsonSchema:
    return integer(f"{description}, in minor units (paise for INR).", minimum=minimum)


def provider_amount(description: str) -> JsonSchema:
    """A provider's figure, passed on as it was sent (any integer that fits 64 bits)."""
    return integer(f"{description}, in minor units, as the provider sent it.")


def currency() -> JsonSchema:
    return text("ISO 4217 currency code.", pattern=CURRENCY_PATTERN)


def provider_currency() -> JsonSchema:
    return text("ISO 4217 currency code, as the provider sent it.")


def nullable(schema: JsonSchema) -> JsonSchema:
    """`schema`, or null."""
    widened = dict(schema)
    widened["type"] = [schema["type"], "null"]
    if "const" in widened:
        widened["enum"] = [widened.pop("const"), None]
    elif "enum" in widened:
        widened["enum"] = [*widened["enum"], None]
    return widened


def record(title: str, description: str, properties: Mapping[str, JsonSchema]) -> JsonSchema:
    """An object whose every property is always present (if maybe null)."""
    return {
        "type": "object",
        "title": title,
        "description": description,
        "required": list(properties),
        "properties": dict(properties),
    }


def one_of(*schemas: JsonSchema) -> JsonSchema:
    """Exactly one of `schemas` (each titled: the docs name the variants)."""
    return schemas[0] if len(schemas) == 1 else {"oneOf": list(schemas)}
