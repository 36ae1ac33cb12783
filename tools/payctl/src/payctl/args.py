"""argparse types shared by the commands: durations, times and positive counts."""

from __future__ import annotations

import argparse
from datetime import datetime

from payctl.durations import parse_duration, parse_time


def duration_arg(value: str) -> float:
    """A duration flag (`60s`, `5m`, `1h30m`) in seconds."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def time_arg(value: str) -> datetime:
    """A point in time: ISO 8601, or a duration meaning that long ago."""
    try:
        return parse_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {value!r}") from None
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {number}")
    return number
