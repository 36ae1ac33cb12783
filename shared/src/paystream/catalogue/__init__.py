"""The event catalogue: each event type merchants receive by webhook, with a one-line description,
the JSON Schema (draft 2020-12) of its `data` and a sample webhook body.

`GET /api/v1/event-types` serves it and the dashboard's Docs page shows it; the schemas are plain
JSON-compatible dicts (`EventDescription.schema()`), to be referenced from other documents as they
are. What each entry says is checked against real webhooks by the suite.
"""

from __future__ import annotations

from paystream.catalogue.entries import EVENT_CATALOGUE, NOT_DELIVERED, EventDescription

__all__ = ["EVENT_CATALOGUE", "NOT_DELIVERED", "EventDescription"]
