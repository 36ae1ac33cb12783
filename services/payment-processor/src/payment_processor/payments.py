"""Handlers that move API payments and refunds to their final state (issue 3).

`payment.created` and `refund.created` are accepted here: in one transaction with the inbox claim,
the payment (refund) gets its `process_after` time, when its processing delay ends. The handler
returns at once; the `SettlementScheduler` settles it when due and emits `payment.success` /
`payment.failed` (`refund.processed`). A redelivered event finds its inbox row and changes nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
from aiohttp import web

from payment_processor.keys import SCHEDULER, SETTINGS
from payment_processor.outcomes import OutcomePolicy
from payment_processor.settlement import SettlementScheduler
from paystream.consumer import HandlerRegistry, MessageContext
from paystream.errors import PermanentError
from paystream.events import Event, EventType
from paystream.inbox import claim_event
from paystream.logging import get_logger
from paystream.web import POOL, CleanupContext, background

log = get_logger(__name__)

_ACCEPT_PAYMENT = """UPDATE payments SET process_after = now() + make_interval(secs => $2)
                     WHERE id = $1 AND status = 'pending' AND process_after IS NULL
                     RETURNING true"""
_ACCEPT_REFUND = """UPDATE refunds SET process_after = now() + make_interval(secs => $2)
                    WHERE id = $1 AND status = 'pending' AND process_after IS NULL
                    RETURNING true"""


def _object_id(event: Event, kind: str) -> str:
    try:
        value: Any = event.data[kind]["id"]
    except (KeyError, TypeError):
        raise PermanentError(f"{event.type.value} event without data.{kind}.id") from None
    if not isinstance(value, str):
        raise PermanentError(f"{event.type.value} event with a malformed data.{kind}.id")
    return value


def _acceptor(
    pool: asyncpg.Pool, scheduler: SettlementScheduler, policy: OutcomePolicy, kind: str, statement: str
) -> Callable[[Event, MessageContext], Awaitable[None]]:
    async def accept(event: Event, ctx: MessageContext) -> None:
        object_id = _object_id(event, kind)
        delay = policy.delay_seconds()
        async with pool.acquire() as conn, conn.transaction():
            if not await claim_event(conn, ctx.group, event.id):
                return
            accepted = await conn.fetchval(statement, object_id, delay)
        if accepted:
            scheduler.due_in(delay)
            log.info("settlement.accepted", kind=kind, id=object_id, settle_in_s=round(delay, 3))
        else:
            log.info("settlement.not_pending", kind=kind, id=object_id)

    return accept


def build_registry(app: web.Application) -> HandlerRegistry:
    """The handlers for API payments and refunds, bound to this app's pool and scheduler."""
    settings = app[SETTINGS]
    policy = OutcomePolicy(settings.common.test_mode, settings.settlement)
    scheduler = app[SCHEDULER]
    registry = HandlerRegistry()
    registry.add(
        EventType.PAYMENT_CREATED, _acceptor(app[POOL], scheduler, policy, "payment", _ACCEPT_PAYMENT)
    )
    registry.add(EventType.REFUND_CREATED, _acceptor(app[POOL], scheduler, policy, "refund", _ACCEPT_REFUND))
    return registry


def settlement_scheduler() -> CleanupContext:
    """Create the app's `SettlementScheduler` and run it for the app's life (before the consumer
    starts, after it has drained)."""

    async def run(app: web.Application, stop: asyncio.Event) -> None:
        await app[SCHEDULER].run(stop)

    runner = background("settlement-scheduler", run)

    async def context(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        app[SCHEDULER] = SettlementScheduler(
            app[POOL],
            OutcomePolicy(settings.common.test_mode, settings.settlement),
            batch_size=settings.settlement.batch_size,
        )
        async for _ in runner(app):
            yield

    return context
