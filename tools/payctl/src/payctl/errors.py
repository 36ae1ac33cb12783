"""payctl's errors: each carries the exit code and the one line an operator sees."""

from __future__ import annotations

EXIT_OK = 0
EXIT_ATTENTION = 1  # `health` found something, or the thing asked for does not exist
EXIT_UNAVAILABLE = 2  # Redis or PostgreSQL unreachable, or payctl misconfigured


class PayctlError(Exception):
    """A failure reported as `payctl: <message>` on stderr, without a traceback."""

    exit_code = EXIT_ATTENTION

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if exit_code is not None:
            self.exit_code = exit_code


class NotFound(PayctlError):
    """A stream, group or entry that does not exist."""


class StoreUnavailable(PayctlError):
    """Redis or PostgreSQL cannot be reached (or refuses us)."""

    exit_code = EXIT_UNAVAILABLE
