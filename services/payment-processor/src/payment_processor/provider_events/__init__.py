"""Handlers for inbound provider events (`provider:events` and `provider:events:priority`).

The API stores each verified webhook in `provider_events` and queues a `provider_event.received`
envelope naming it. Here, in ONE transaction: claim the envelope in the inbox (a redelivery does
nothing), lock the row, run the handler for its provider and type (typed tables, forward only),
mark the row `processed` / `ignored` (no handler for the type) / `rejected` (unusable, with the
reason), write the audit row, and enqueue the domain events on `payment:events`.

Priority: under a backlog, dispute and downtime events (their own stream, read by their own
consumer with its own slots; see worker.py) must not wait for database connections behind the bulk
either, so events from `provider:events` share a bounded number of connections
(`NORMAL_DB_CONCURRENCY`) while priority events bypass that bound.
"""

from __future__ import annotations

import asyncio

import asyncpg
from aiohttp import web

from payment_processor.provider_events.payable import handle_notification
from payment_processor.provider_events.razorpay import RAZORPAY_HANDLERS, EventHandler
from payment_processor.provider_events.store import IGNORED, PROCESSED, RECEIVED, REJECTED, lock_event, settle
from payment_processor.provider_events.work import Rejected, Work
from paystream import outbox
from paystream.consumer import ConsumerConfig, HandlerRegistry, MessageContext
from paystream.errors import PermanentError
from paystream.events import Event, EventType, Stream
from paystream.inbox import claim_event
from paystream.logging import get_logger
from paystream.web import POOL

log = get_logger(__name__)

GROUP = "payment-processor"
NORMAL_DB_CONCURRENCY = 32

# The consumer of `provider:events:priority` (same group as the processor's main consumer).
PRIORITY_CONSUMER = ConsumerConfig(group=GROUP, streams=(Stream.PROVIDER_EVENTS_PRIORITY,), concurrency=32)


class ProviderEventHandler:
    """The handler both provider consumers share (one per app): it owns the bound on database
    connections that bulk provider events may take, which priority events bypass."""

    def __init__(self, normal_db_concurrency: int = NORMAL_DB_CONCURRENCY) -> None:
        self._pool: asyncpg.Pool | None = None
        self._normal_slots = asyncio.Semaphore(normal_db_concurrency)
        self.registry = HandlerRegistry()
        self.registry.add(EventType.PROVIDER_EVENT_RECEIVED, self.handle)

    def bind(self, pool: asyncpg.Pool) -> HandlerRegistry:
        """Give the handler its pool once the app's stores are open; returns its registry."""
        self._pool = pool
        return self.registry

    async def handle(self, event: Event, ctx: MessageContext) -> None:
        provider, event_id = event.data.get("provider"), event.data.get("event_id")
        if not isinstance(provider, str) or not isinstance(event_id, str):
            raise PermanentError("provider_event.received without data.provider and data.event_id")
        if self._pool is None:
            raise RuntimeError("ProviderEventHandler.bind(pool) was not called")
        if ctx.stream == Stream.PROVIDER_EVENTS_PRIORITY:
            await process(self._pool, event, provider, event_id, ctx.group)
            return
        async with self._normal_slots:
            await process(self._pool, event, provider, event_id, ctx.group)


PROVIDER_EVENT_HANDLER = web.AppKey("provider_event_handler", ProviderEventHandler)


def build_handler(app: web.Application) -> HandlerRegistry:
    """The provider-event handler of this app, bound to its pool (for either consumer)."""
    return app[PROVIDER_EVENT_HANDLER].bind(app[POOL])


def handler_for(provider: str, event_type: str) -> EventHandler | None:
    if provider == "payable":
        return handle_notification
    if provider == "razorpay":
        return RAZORPAY_HANDLERS.get(event_type)
    return None


async def process(
    pool: asyncpg.Pool, envelope: Event, provider: str, event_id: str, group: str = GROUP
) -> None:
    """Handle one stored provider event exactly once (see the module doc)."""
    async with pool.acquire() as conn, conn.transaction():
        if not await claim_event(conn, group, envelope.id):
            return
        found = await lock_event(conn, provider, event_id)
        if found is None:
            raise PermanentError(f"no stored provider event {provider}:{event_id}")
        status, stored = found
        if status != RECEIVED:
            return  # settled already (a replayed envelope with a new id)
        work = Work(conn, stored)
        handler = handler_for(provider, stored.type)
        if handler is None:
            await settle(work, IGNORED, f"no handler for {provider} event type {stored.type!r}")
            log.info("provider_event.ignored", provider=provider, event_type=stored.type)
            return
        try:
            async with conn.transaction():  # a savepoint: a rejected event keeps none of its writes
                await handler(work)
        except Rejected as exc:
            work = Work(conn, stored)
            await settle(work, REJECTED, exc.reason)
            log.warning(
                "provider_event.rejected", provider=provider, event_type=stored.type, reason=exc.reason
            )
            return
        await settle(work, PROCESSED, None)
        await outbox.enqueue(conn, Stream.PAYMENT_EVENTS, work.emitted)
