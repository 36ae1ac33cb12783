"""The Socket.IO side of the contract: connect, disconnect, subscribe and unsubscribe.

- connect: `auth: {token, lastEventId?, lastEventName?}` (or `Authorization: Bearer`); a refusal raises
  `ConnectionRefusedError(message, {"code": ...})`, which clients receive in `connect_error`.
- `subscribe:payment-events` {invoiceId, lastEventId?, lastEventName?} -> ack `{"ok": true}` or `{"ok": false,
  "error": "..."}`; joins `payment:<invoiceId>` only for an invoice of the token's merchant (and
  salon). With `lastEventId`, the invoice's missed `payment:completed` is replayed first.
  `lastEventName` names the packet of that event the client saw last (an event can be several
  packets, and a process can die between them): the event's later packets are replayed too.
- `unsubscribe:payment-events` {invoiceId} -> ack `{"ok": true}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import socketio  # type: ignore[import-untyped]
from aiohttp import web

from notifier.auth import AuthError, authenticate, token_from_handshake
from notifier.keys import HUB, SETTINGS
from notifier.metrics import AUTH_REFUSED
from paystream.db import DATABASE_ERRORS
from paystream.inputs import is_text
from paystream.invoices import invoice_visible_to
from paystream.logging import get_logger
from paystream.web import POOL

log = get_logger(__name__)

SUBSCRIBE = "subscribe:payment-events"
UNSUBSCRIBE = "unsubscribe:payment-events"
MAX_INVOICE_ID_LENGTH = 255
MAX_EVENT_ID_LENGTH = 64
INVOICE_NOT_FOUND = "invoice not found"


def register(sio: socketio.AsyncServer, app: web.Application) -> None:
    """Attach the handlers; they look up the hub and pool in `app` when called."""

    @sio.event  # type: ignore[untyped-decorator]
    async def connect(sid: str, environ: Mapping[str, Any], auth: Any = None) -> None:
        hub = app[HUB]
        if hub.draining:
            raise socketio.exceptions.ConnectionRefusedError(
                "server shutting down", {"code": "SHUTTING_DOWN"}
            )
        try:
            principal = authenticate(token_from_handshake(auth, environ), app[SETTINGS].jwt_secret)
        except AuthError as exc:
            AUTH_REFUSED.labels(exc.failure.value).inc()
            log.info("socket.refused", reason=exc.failure.value)
            raise socketio.exceptions.ConnectionRefusedError(
                exc.message, {"code": exc.failure.value}
            ) from None
        resume = auth if isinstance(auth, Mapping) else {}
        session = hub.open_session(
            sid, principal, _optional_id(resume.get("lastEventId")), _optional_id(resume.get("lastEventName"))
        )
        log.info(
            "socket.connected",
            sid=sid,
            merchant_id=principal.merchant_id,
            salon_id=principal.salon_id,
            catch_up=session.resume_from is not None,
        )

    @sio.event  # type: ignore[untyped-decorator]
    async def disconnect(sid: str, reason: Any = None) -> None:
        app[HUB].close_session(sid)
        log.info("socket.disconnected", sid=sid, reason=str(reason) if reason is not None else None)

    @sio.on(SUBSCRIBE)  # type: ignore[untyped-decorator]
    async def subscribe(sid: str, data: Any = None) -> dict[str, Any]:
        hub = app[HUB]
        session = hub.sessions.get(sid)
        if session is None or session.closing:
            return {"ok": False, "error": "not connected"}
        invoice_id = _invoice_id(data)
        if invoice_id is None:
            return {"ok": False, "error": "invoiceId is required"}
        principal = session.principal
        if principal.invoice_id is not None and invoice_id != principal.invoice_id:
            log.info("subscribe.refused", sid=sid, merchant_id=principal.merchant_id, scope="invoice")
            return {"ok": False, "error": INVOICE_NOT_FOUND}
        try:
            visible = await invoice_visible_to(
                app[POOL], principal.merchant_id, invoice_id, principal.salon_id
            )
        except DATABASE_ERRORS as exc:
            log.warning("subscribe.database_unavailable", error=str(exc))
            return {"ok": False, "error": "temporarily unavailable; retry shortly"}
        if not visible:
            log.info("subscribe.refused", sid=sid, merchant_id=principal.merchant_id)
            return {"ok": False, "error": INVOICE_NOT_FOUND}
        hub.subscribe(
            session,
            invoice_id,
            _optional_id(data.get("lastEventId")),
            _optional_id(data.get("lastEventName")),
        )
        return {"ok": True}

    @sio.on(UNSUBSCRIBE)  # type: ignore[untyped-decorator]
    async def unsubscribe(sid: str, data: Any = None) -> dict[str, Any]:
        hub = app[HUB]
        session = hub.sessions.get(sid)
        if session is None:
            return {"ok": False, "error": "not connected"}
        invoice_id = _invoice_id(data)
        if invoice_id is None:
            return {"ok": False, "error": "invoiceId is required"}
        hub.unsubscribe(session, invoice_id)
        return {"ok": True}


def _invoice_id(data: Any) -> str | None:
    value = data.get("invoiceId") if isinstance(data, Mapping) else None
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_INVOICE_ID_LENGTH:
        return None
    return value if is_text(value) else None


def _optional_id(value: Any) -> str | None:
    """A client-supplied event id or event name, or None; its validity is the catch-up's to judge."""
    if isinstance(value, str) and 0 < len(value) <= MAX_EVENT_ID_LENGTH and is_text(value):
        return value
    return None
