"""The catalogue itself: every event type is described (or said never to be sent, and really never
sent), every schema is valid draft 2020-12, every sample is a real body that its schema accepts,
and the README names every event."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
from catalogue_check import data_errors
from jsonschema import Draft202012Validator

from paystream.catalogue import EVENT_CATALOGUE, NOT_DELIVERED
from paystream.catalogue.samples import SAMPLE_TIME
from paystream.events import MERCHANT_EVENT_TYPES, EventType

ROOT = Path(__file__).resolve().parents[2]
DESCRIBED = list(EVENT_CATALOGUE)


def test_every_event_type_is_described_or_said_never_to_be_sent() -> None:
    undescribed = set(EventType) - set(EVENT_CATALOGUE) - set(NOT_DELIVERED)
    assert not undescribed, f"add a catalogue entry (paystream.catalogue.entries) for {sorted(undescribed)}"
    assert not set(EVENT_CATALOGUE) & set(NOT_DELIVERED)
    # A described type reaches the dispatcher and may be subscribed to.
    assert set(EVENT_CATALOGUE) <= set(MERCHANT_EVENT_TYPES)


def test_a_type_said_never_to_be_sent_is_emitted_by_no_code() -> None:
    """Nothing outside the enum and the catalogue names a type that the catalogue leaves out."""
    sources = [
        path
        for folder in ("shared/src", "services")
        for path in (ROOT / folder).rglob("*.py")
        if "tests" not in path.parts and path.name != "events.py" and "catalogue" not in path.parts
    ]
    assert len(sources) > 50, "the scan found the sources"
    names = {event_type.name for event_type in NOT_DELIVERED}
    pattern = re.compile(r"EventType\.(" + "|".join(names) + r")\b")
    found = [
        f"{path.relative_to(ROOT)}: {match.group(0)}"
        for path in sources
        for match in pattern.finditer(path.read_text())
    ]
    assert not found, f"a type the catalogue says is never sent is used: {found}"


@pytest.mark.parametrize("event_type", DESCRIBED, ids=[t.value for t in DESCRIBED])
def test_the_schema_is_a_draft_2020_12_schema(event_type: EventType) -> None:
    schema = EVENT_CATALOGUE[event_type].schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert schema["type"] == "object" and schema["required"]


@pytest.mark.parametrize("event_type", DESCRIBED, ids=[t.value for t in DESCRIBED])
def test_the_sample_is_a_whole_webhook_body_that_the_schema_accepts(event_type: EventType) -> None:
    entry = EVENT_CATALOGUE[event_type]
    sample = entry.sample()
    assert list(sample) == ["event", "timestamp", "data"]
    assert sample["event"] == event_type.value
    assert sample["timestamp"] == int(SAMPLE_TIME.timestamp())
    assert data_errors(event_type, sample["data"]) == []
    assert entry.description and "\n" not in entry.description and len(entry.description) <= 120


def sample_payment() -> dict[str, Any]:
    data: dict[str, Any] = copy.deepcopy(EVENT_CATALOGUE[EventType.PAYMENT_SUCCESS].sample()["data"])
    return data


def test_the_check_fails_on_an_undocumented_field_a_wrong_status_or_a_missing_field() -> None:
    extra = sample_payment()
    extra["payment"]["fee"] = 100
    assert any("'fee' was unexpected" in error for error in data_errors(EventType.PAYMENT_SUCCESS, extra))
    # The published schema is open: a receiver must accept a field added later.
    published = Draft202012Validator(EVENT_CATALOGUE[EventType.PAYMENT_SUCCESS].schema())
    assert published.is_valid(extra)

    wrong_status = sample_payment()
    wrong_status["payment"]["status"] = "failed"
    assert data_errors(EventType.PAYMENT_SUCCESS, wrong_status)

    missing = sample_payment()
    del missing["payment"]["updated_at"]
    assert any(
        "'updated_at' is a required property" in e for e in data_errors(EventType.PAYMENT_SUCCESS, missing)
    )

    bad_time = sample_payment()
    bad_time["payment"]["created_at"] = "2026-06-01 10:30:00"
    assert data_errors(EventType.PAYMENT_SUCCESS, bad_time)


def test_the_readme_names_every_event_in_its_webhooks_section() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## Webhooks") : readme.index("## Live status for frontends")]
    missing = [name.value for name in EVENT_CATALOGUE if f"`{name.value}`" not in section]
    assert not missing, f"the README's webhooks section does not name {missing}"
