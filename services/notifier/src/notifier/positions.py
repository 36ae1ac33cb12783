"""Stream positions and event ids: the two clocks a catch-up has to line up.

A stream entry id is `<ms>-<seq>` from Redis's clock at XADD; an event id is a UUIDv7 whose top 48
bits are the producer's clock in ms when the event was created (before its commit and XADD).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from paystream.events import STREAM_FIELD

StreamId = tuple[int, int]

ORIGIN = "0-0"
_ID_PREFIX = b'{"id":"'
_UUID_LENGTH = 36


def parse_stream_id(entry_id: str | bytes) -> StreamId:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    millis, _, sequence = text.partition("-")
    return int(millis), int(sequence or 0)


def stream_id_text(entry_id: str | bytes) -> str:
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


def uuid7_millis(event_id: str) -> int | None:
    """The creation time (ms since the epoch) of a UUIDv7 event id; None for anything else."""
    try:
        parsed = uuid.UUID(event_id)
    except (ValueError, AttributeError, TypeError):
        return None
    if parsed.version != 7:
        return None
    return parsed.int >> 80


def envelope_id(raw: bytes) -> str | None:
    """The event id of an encoded envelope without parsing it all.

    `Event.encode()` writes `id` first, so the fast path is a slice; anything else is parsed.
    """
    end = len(_ID_PREFIX) + _UUID_LENGTH
    if raw.startswith(_ID_PREFIX) and raw[end : end + 1] == b'"':
        return raw[len(_ID_PREFIX) : end].decode()
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    value = body.get("id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else None


def stream_entries(reply: Any) -> list[tuple[str, bytes | None]]:
    """(entry id, encoded event) pairs from an XRANGE/XREVRANGE reply, or from one stream of XREAD."""
    entries: list[tuple[str, bytes | None]] = []
    for raw_id, fields in reply or []:
        raw = fields.get(STREAM_FIELD) if fields else None
        entries.append((stream_id_text(raw_id), raw if isinstance(raw, bytes) else None))
    return entries
