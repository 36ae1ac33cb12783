"""Human durations both ways (`3m12s`, `--idle 60s`) and the points in time `--since` accepts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: str) -> float:
    """`90`, `90s`, `1m30s`, `500ms`, `2h`, `7d` -> seconds; ValueError otherwise."""
    raw = value.strip().lower()
    if not raw:
        raise ValueError("empty duration")
    try:
        seconds = float(raw)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError(f"negative duration {value!r}")
        return seconds
    position, total = 0, 0.0
    for match in _PART.finditer(raw):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(raw):
        raise ValueError(f"not a duration: {value!r} (try 60s, 5m, 1h30m, 7d)")
    return total


def format_duration(seconds: float | None) -> str:
    """3m12s, 2h5m, 1d3h, 850ms; '-' for None. Two units at most: enough to read at a glance."""
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    whole = int(seconds)
    parts: list[str] = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if whole >= size or (unit == "s" and not parts):
            amount, whole = divmod(whole, size)
            parts.append(f"{amount}{unit}")
        elif parts:
            parts.append("")  # a zero unit between two shown ones still counts towards the two
        if len(parts) == 2:
            break
    return "".join(part for part in parts if part)


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 time (UTC when it names no zone) or a duration meaning that long ago (`2h`)."""
    now = now or datetime.now(UTC)
    raw = value.strip()
    try:
        return now - timedelta(seconds=parse_duration(raw.removesuffix(" ago")))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(f"not a time: {value!r} (try 2h, 30m or 2024-05-01T10:00:00Z)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
