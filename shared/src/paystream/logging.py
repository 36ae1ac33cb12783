"""structlog configured once: contextvars, ISO UTC timestamps, JSON rendered by orjson.

Secrets and card data never reach a log line: `redact_secrets` masks known-sensitive keys wherever
they appear in an event dict, as a last line of defence behind the rule of not logging them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import orjson
import structlog

from paystream.settings import LogSettings

SENSITIVE_KEYS = frozenset(
    {
        "password",
        "secret",
        "api_secret",
        "x-api-secret",
        "webhook_secret",
        "authorization",
        "token",
        "cvv",
        "card_number",
        "number",
        "signature",
        "x-razorpay-signature",
        "checkvalue",
        "merchant_token",
        "jwt",
    }
)


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key.lower() in SENSITIVE_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def _orjson_dumps(obj: Any, default: Any = None) -> str:
    try:
        return orjson.dumps(obj, default=default or str).decode()
    except orjson.JSONEncodeError:
        # A string from outside that was not UTF-8 (a lone surrogate) must not cost the log line.
        return orjson.dumps(_printable(obj), default=default or str).decode()


def _printable(value: Any) -> Any:
    """`value` with every string made valid UTF-8 (undecodable bytes become U+FFFD)."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_printable(str(key)): _printable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_printable(item) for item in value]
    return value


def configure_logging(settings: LogSettings, *, service: str) -> None:
    """Configure structlog and the stdlib root logger for one service process."""
    level = getattr(logging, settings.level)
    renderer: Any
    if settings.format == "json":
        renderer = structlog.processors.JSONRenderer(serializer=_orjson_dumps)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    shared_processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact_secrets,
    ]
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(service=service)
    # Libraries log through the stdlib: route them through the same renderer, warnings and up.
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(processors=[*shared_processors, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(max(level, logging.WARNING))


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger
