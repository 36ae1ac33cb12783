"""Output: aligned tables for people, JSON for machines."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

import orjson

Cell = str | int | float | None


def to_json(payload: Any) -> str:
    return orjson.dumps(payload, option=orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS).decode()


def table(headers: Sequence[str], rows: Sequence[Sequence[Cell]], *, empty: str = "(none)") -> str:
    """Columns padded to their widest cell; numbers right-aligned."""
    if not rows:
        return empty
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(header), *(len(row[i]) for row in cells)) for i, header in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], int | float) or row[i] is None for row in rows) for i in range(len(headers))
    ]
    lines = ["  ".join(header.upper().ljust(widths[i]) for i, header in enumerate(headers)).rstrip()]
    for row in cells:
        line = "  ".join(
            value.rjust(widths[i]) if numeric[i] else value.ljust(widths[i]) for i, value in enumerate(row)
        )
        lines.append(line.rstrip())
    return "\n".join(lines)


def _cell(value: Cell) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def fields(pairs: Sequence[tuple[str, Cell]]) -> str:
    """`key: value` lines with the values aligned."""
    width = max((len(key) for key, _ in pairs), default=0)
    return "\n".join(f"{key + ':':<{width + 1}} {_cell(value)}" for key, value in pairs)


def shorten(value: str, limit: int = 60) -> str:
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Output:
    """Where a command's result goes: JSON (one document, or one object per line) or text."""

    def __init__(self, *, json_mode: bool, stream: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self._stream = stream or sys.stdout

    def result(self, payload: Mapping[str, Any], text: str) -> None:
        self.write(to_json(payload) if self.json_mode else text)

    def line(self, payload: Mapping[str, Any], text: str) -> None:
        """One streamed record (`tail`): flushed at once so pipes see it."""
        self.write(to_json(payload) if self.json_mode else text)
        self._stream.flush()

    def write(self, text: str) -> None:
        self._stream.write(text if text.endswith("\n") else text + "\n")
