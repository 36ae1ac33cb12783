"""Stream entries as operators see them: the decoded event, or why it would not decode; dead letters."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from paystream.errors import PermanentError
from paystream.events import (
    DEAD_LETTER_SUFFIX,
    SEQUENCE_FIELD,
    STREAM_FIELD,
    Event,
    dead_letter_stream,
    parse_sequence,
)
from paystream.streaminfo import text


@dataclass(frozen=True, slots=True)
class DecodedEntry:
    id: str
    event: Event | None
    # Why `event` is None: no `event` field, or a malformed envelope.
    problem: str | None
    # Every field but the encoded event (a dead letter's metadata, say).
    extra: dict[str, str]
    raw_event: bytes | None
    # The event's number in its payment's order (the `seq` field), when it has a well-formed one.
    sequence: int | None = None

    @property
    def event_type(self) -> str | None:
        return self.event.type.value if self.event else None


def decode_entry(entry_id: Any, fields: Mapping[bytes, bytes]) -> DecodedEntry:
    raw = fields.get(STREAM_FIELD)
    extra = {text(key): text(value) for key, value in fields.items() if key != STREAM_FIELD}
    event: Event | None = None
    problem: str | None = None
    if raw is None:
        problem = "entry has no 'event' field"
    else:
        try:
            event = Event.decode(raw)
        except PermanentError as exc:
            problem = str(exc)
    return DecodedEntry(text(entry_id), event, problem, extra, raw, _sequence(fields.get(SEQUENCE_FIELD)))


def _sequence(raw: bytes | None) -> int | None:
    try:
        return parse_sequence(raw) if raw is not None else None
    except ValueError:
        return None


def event_json(event: Event) -> dict[str, Any]:
    return {**event.to_dict(), "occurred_at": event.occurred_at.isoformat()}


def event_subject(event: Event) -> str:
    """What the event is about, in a few words: `payment pay_123 success 5000 INR`."""
    for kind in ("payment", "refund", "dispute", "token"):
        subject = event.data.get(kind)
        if isinstance(subject, Mapping):
            words = [kind] + [
                str(subject[key])
                for key in ("id", "status", "amount", "currency")
                if subject.get(key) is not None
            ]
            return " ".join(words)
    return ""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of `<stream>:dlq`, as `paystream.consumer.StreamConsumer._dead_letter` writes it."""

    dlq: str
    id: str
    source_stream: str
    source_id: str
    group: str
    consumer: str
    error: str
    deliveries: int | None
    event_type: str
    failed_at_ms: int | None
    entry: DecodedEntry

    @classmethod
    def from_entry(cls, dlq: str, entry_id: Any, fields: Mapping[bytes, bytes]) -> DeadLetter:
        entry = decode_entry(entry_id, fields)
        meta = entry.extra
        return cls(
            dlq=dlq,
            id=entry.id,
            source_stream=meta.get("source_stream") or source_stream_of(dlq),
            source_id=meta.get("source_id", ""),
            group=meta.get("group", ""),
            consumer=meta.get("consumer", ""),
            error=meta.get("error", ""),
            deliveries=_int_or_none(meta.get("deliveries")),
            event_type=meta.get("event_type") or entry.event_type or "unknown",
            failed_at_ms=_int_or_none(meta.get("failed_at")),
            entry=entry,
        )

    def to_json(self, now_ms: int) -> dict[str, Any]:
        event = self.entry.event
        return {
            "dlq": self.dlq,
            "id": self.id,
            "source_stream": self.source_stream,
            "source_id": self.source_id,
            "group": self.group,
            "consumer": self.consumer,
            "event_type": self.event_type,
            "event_id": event.id if event else None,
            "merchant_id": event.merchant_id if event else None,
            "deliveries": self.deliveries,
            "failed_at_ms": self.failed_at_ms,
            "failed_age_s": self.failed_age_s(now_ms),
            "error": self.error,
            "replayable": self.entry.raw_event is not None,
        }

    def failed_age_s(self, now_ms: int) -> float | None:
        if self.failed_at_ms is None:
            return None
        return round(max(0, now_ms - self.failed_at_ms) / 1000, 3)


def dlq_name(stream: str) -> str:
    """The dead-letter stream of `stream`; a name that already is one is kept."""
    return stream if stream.endswith(DEAD_LETTER_SUFFIX) else dead_letter_stream(stream)


def source_stream_of(dlq: str) -> str:
    return dlq.removesuffix(DEAD_LETTER_SUFFIX)


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
