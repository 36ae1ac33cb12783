"""Handlers that move API payments and refunds to their final state (issue 3)."""

from __future__ import annotations

from paystream.consumer import HandlerRegistry

registry = HandlerRegistry()
