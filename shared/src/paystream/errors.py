"""The error hierarchy: it decides retry versus dead-letter, and which HTTP status a client sees."""

from __future__ import annotations


class PaystreamError(Exception):
    """Base of every error the platform raises on purpose."""


class SettingsError(PaystreamError):
    """A missing or malformed environment variable; the message names it."""


class RetryableError(PaystreamError):
    """A handler failed for a reason that may pass (a timeout, a lock): deliver the event again."""


class PermanentError(PaystreamError):
    """A handler can never succeed with this event: dead-letter it at once."""


class ApiError(PaystreamError):
    """An error answered to an HTTP client as `{"error": {"code", "description", "field"}}`."""

    status: int = 400
    code: str = "BAD_REQUEST_ERROR"

    def __init__(self, description: str, *, field: str | None = None, code: str | None = None) -> None:
        super().__init__(description)
        self.description = description
        self.field = field
        if code is not None:
            self.code = code

    def to_body(self) -> dict[str, dict[str, str | None]]:
        return {"error": {"code": self.code, "description": self.description, "field": self.field}}

    @property
    def headers(self) -> dict[str, str]:
        """Headers the answer carries besides the body (`Retry-After`, say)."""
        return {}


class BadRequestError(ApiError):
    status = 400


class AuthenticationError(ApiError):
    status = 401
    code = "AUTHENTICATION_ERROR"


class NotFoundError(ApiError):
    status = 404
    code = "NOT_FOUND_ERROR"


class ConflictError(ApiError):
    status = 409
    code = "CONFLICT_ERROR"


class PayloadTooLargeError(ApiError):
    status = 413
    code = "PAYLOAD_TOO_LARGE"


class ValidationError(ApiError):
    status = 422
    code = "VALIDATION_ERROR"


class ServiceUnavailableError(ApiError):
    status = 503
    code = "SERVICE_UNAVAILABLE"

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}
