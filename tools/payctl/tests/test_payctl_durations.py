"""Human durations both ways, and the times `--since` accepts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from payctl.durations import format_duration, parse_duration, parse_time


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0, "0ms"),
        (0.25, "250ms"),
        (1.9, "1s"),
        (59, "59s"),
        (192, "3m12s"),
        (3600, "1h"),
        (3605, "1h"),
        (7500, "2h5m"),
        (90000, "1d1h"),
        (-3, "0ms"),
    ],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("60", 60), ("60s", 60), ("5m", 300), ("1h30m", 5400), ("500ms", 0.5), ("7d", 604800), ("1.5h", 5400)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5 m", "m5", "-3", "5x"])
def test_parse_duration_refuses_what_it_cannot_read(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


def test_parse_time_reads_iso_and_durations_ago() -> None:
    now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    assert parse_time("2h", now) == now - timedelta(hours=2)
    assert parse_time("30m ago", now) == now - timedelta(minutes=30)
    assert parse_time("2024-05-01T10:00:00Z", now) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    assert parse_time("2024-05-01T10:00:00", now) == datetime(2024, 5, 1, 10, tzinfo=UTC)  # UTC when no zone
    assert parse_time("2024-05-01T15:30:00+05:30", now) == datetime(2024, 5, 1, 10, tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_time("yesterday-ish", now)
