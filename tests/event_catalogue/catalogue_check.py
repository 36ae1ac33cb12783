"""Checking a webhook's `data` against the catalogue, strictly.

The published schemas are open (receivers must ignore fields they do not know); here every object
is closed, so that a field the platform sends and the catalogue does not describe is an error.
"""

from __future__ import annotations

from typing import Any

from jsonschema import Draft202012Validator

from paystream.catalogue import EVENT_CATALOGUE
from paystream.events import EventType


def closed(schema: Any) -> Any:
    """`schema` with `additionalProperties: false` on every object that lists its properties."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    if isinstance(schema.get("properties"), dict) and "additionalProperties" not in schema:
        result["additionalProperties"] = False
    return result


def strict_validator(event_type: EventType) -> Draft202012Validator:
    schema = closed(EVENT_CATALOGUE[event_type].schema())
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def data_errors(event_type: EventType, data: Any) -> list[str]:
    """What is wrong with `data` as the `data` of an `event_type` webhook, one line each (none: fine)."""
    errors = strict_validator(event_type).iter_errors(data)
    return sorted(f"{error.json_path}: {_reason(error)}" for error in errors)


def _reason(error: Any) -> str:
    # A oneOf failure says little by itself; its variants' own errors say why each did not fit.
    if error.validator == "oneOf" and error.context:
        return "; ".join(
            f"[variant {sub.schema_path[0]}] {sub.json_path}: {sub.message}" for sub in error.context
        )
    return str(error.message)


def _variants(event_type: EventType) -> dict[str, list[dict[str, Any]]]:
    """The objects of `data` that have more than one documented shape, and those shapes."""
    properties = EVENT_CATALOGUE[event_type].schema()["properties"]
    return {name: schema["oneOf"] for name, schema in properties.items() if "oneOf" in schema}


def documented_variants(event_type: EventType) -> set[str]:
    """The titles of the shapes an event type's objects may take (empty when each has one)."""
    return {variant["title"] for variants in _variants(event_type).values() for variant in variants}


def variants_matched(event_type: EventType, data: Any) -> set[str]:
    """The titles of the shapes `data`'s objects take (each matched strictly)."""
    return {
        variant["title"]
        for name, variants in _variants(event_type).items()
        for variant in variants
        if name in data and Draft202012Validator(closed(variant)).is_valid(data[name])
    }
