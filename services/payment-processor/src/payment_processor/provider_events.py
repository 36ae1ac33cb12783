"""Handlers for inbound provider events from `provider:events` (issue 5)."""

from __future__ import annotations

from paystream.consumer import HandlerRegistry

registry = HandlerRegistry()
