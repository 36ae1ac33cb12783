"""Handlers for inbound provider events (`provider:events` and `provider:events:priority`).

The API stores each verified webhook in `provider_events` and queues a `provider_event.received`
envelope naming it (provider, event id, and the merchant in the envelope's `merchant_id`: event and
object ids are unique only within a merchant's provider account, so the merchant is part of every
key). Here, in ONE transaction: lock the row (one that is no longer `received` was handled before:
the row's own status is this path's inbox, so a redelivery does nothing and writes nothing), run
the handler for its provider and type (typed tables, forward only), mark the row `processed` /
`ignored` (no handler for the type) / `rejected` (unusable, with the reason), write the audit row,
and enqueue the domain events on `payment:events`.

`rejected` is final and covers both what a handler finds unusable (`Rejected`: a required field
missing, an amount out of range) and what the database refuses to store from the event's content
(SQLSTATE class 22: a NUL character, a number out of range, an invalid date): retrying the same
data cannot help, so such an event is settled `rejected`, keeps none of its writes, and is
acknowledged, never retried into the dead-letter stream.

Events from `provider:events` are group-committed: whatever arrives while a transaction is in
flight is handled together in the next one (one lock statement, the handlers' own
statements, one settle-and-audit statement, one outbox insert, one commit). When anything in a batch
fails (an event is rejected, a row is missing, a deadlock, a data error), the transaction is rolled
back and each of its events is handled in a transaction of its own, so one bad event holds back
nothing and a rejected one keeps none of its writes.

Priority: under a backlog, dispute and downtime events (their own stream, read by their own
consumer with its own slots; see worker.py) must not wait behind the bulk either: they bypass the
batches (which hold at most `BATCH_WRITERS` connections) and are handled one per transaction.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import asyncpg
from aiohttp import web

from payment_processor.provider_events.payable import handle_notification
from payment_processor.provider_events.razorpay import RAZORPAY_HANDLERS, EventHandler
from payment_processor.provider_events.store import (
    IGNORED,
    PROCESSED,
    RECEIVED,
    REJECTED,
    EventClaim,
    Settlement,
    lock_events,
    settle,
)
from payment_processor.provider_events.work import Rejected, StoredEvent, Work
from paystream import outbox
from paystream.consumer import ConsumerConfig, HandlerRegistry, MessageContext
from paystream.db import DATABASE_UNAVAILABLE_ERRORS, Connection, data_refusal
from paystream.errors import PermanentError
from paystream.events import ConsumerGroup, Event, EventType, Stream
from paystream.groupcommit import GroupCommitter, Submission
from paystream.invoices import record_invoice_owners
from paystream.logging import get_logger
from paystream.web import POOL

log = get_logger(__name__)

BATCH_WRITERS = 1
MAX_BATCH = 100

# The consumer of `provider:events:priority` (same group as the processor's main consumer).
PRIORITY_CONSUMER = ConsumerConfig(
    group=ConsumerGroup.PAYMENT_PROCESSOR, streams=(Stream.PROVIDER_EVENTS_PRIORITY,), concurrency=32
)


@dataclass(frozen=True, slots=True)
class ReceivedEvent:
    """A `provider_event.received` envelope and the stored row it names (the merchant is the
    envelope's)."""

    envelope: Event
    provider: str
    event_id: str

    @property
    def claim(self) -> EventClaim:
        return EventClaim(self.envelope.id, self.provider, self.envelope.merchant_id, self.event_id)


class ProviderEventHandler:
    """The handler both provider consumers share (one per app): bulk events go through its group
    committer, priority events straight to the database."""

    def __init__(
        self,
        *,
        max_batch: int = MAX_BATCH,
        writers: int = BATCH_WRITERS,
    ) -> None:
        self._pool: asyncpg.Pool | None = None
        self._batches: GroupCommitter[ReceivedEvent, None] = GroupCommitter(
            self._commit_batch, name="provider-events", max_batch=max_batch, writers=writers
        )
        self.registry = HandlerRegistry()
        self.registry.add(EventType.PROVIDER_EVENT_RECEIVED, self.handle)

    def bind(self, pool: asyncpg.Pool) -> HandlerRegistry:
        """Give the handler its pool once the app's stores are open; returns its registry."""
        self._pool = pool
        return self.registry

    def start(self, pool: asyncpg.Pool) -> None:
        self.bind(pool)
        self._batches.start()

    async def stop(self) -> None:
        await self._batches.stop()

    async def handle(self, event: Event, ctx: MessageContext) -> None:
        provider, event_id = event.data.get("provider"), event.data.get("event_id")
        if not isinstance(provider, str) or not isinstance(event_id, str):
            raise PermanentError("provider_event.received without data.provider and data.event_id")
        if self._pool is None:
            raise RuntimeError("ProviderEventHandler.bind(pool) was not called")
        received = ReceivedEvent(event, provider, event_id)
        if ctx.stream == Stream.PROVIDER_EVENTS_PRIORITY:
            await process(self._pool, event, provider, event_id)
            return
        await self._batches.submit(received)

    async def _commit_batch(self, batch: Sequence[Submission[ReceivedEvent, None]]) -> None:
        assert self._pool is not None
        await process_batch(self._pool, batch)


PROVIDER_EVENT_HANDLER = web.AppKey("provider_event_handler", ProviderEventHandler)


def build_handler(app: web.Application) -> HandlerRegistry:
    """The provider-event handler of this app, bound to its pool (for either consumer)."""
    return app[PROVIDER_EVENT_HANDLER].bind(app[POOL])


async def batch_writers(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: the group committer's writers (register before the consumers, so that on
    shutdown the consumers drain first and the writers commit what they handed over)."""
    handler = app[PROVIDER_EVENT_HANDLER]
    handler.start(app[POOL])
    try:
        yield
    finally:
        await handler.stop()


def handler_for(provider: str, event_type: str) -> EventHandler | None:
    if provider == "payable":
        return handle_notification
    if provider == "razorpay":
        return RAZORPAY_HANDLERS.get(event_type)
    return None


async def process(
    pool: asyncpg.Pool,
    envelope: Event,
    provider: str,
    event_id: str,
) -> None:
    """Handle one stored provider event (the envelope's merchant's) exactly once, in a transaction
    of its own."""
    claim = EventClaim(envelope.id, provider, envelope.merchant_id, event_id)
    await _process_claims(pool, [claim], isolate_rejection=True)


async def process_batch(
    pool: asyncpg.Pool,
    batch: Sequence[Submission[ReceivedEvent, None]],
) -> None:
    """Handle a batch in one transaction; when that fails, each event in a transaction of its own.
    (A batch of one takes the same path: without the savepoint that isolates a rejection, it is two
    round trips shorter, and a rejected event is rare.)"""
    try:
        claims = [submission.item.claim for submission in batch]
        await _process_claims(pool, claims, isolate_rejection=False)
    except DATABASE_UNAVAILABLE_ERRORS as exc:
        for submission in batch:
            submission.fail(exc)
        return
    except Exception as exc:
        # A data refusal's own message quotes the refused value: name the refusal instead.
        error = data_refusal(exc) or f"{type(exc).__name__}: {exc}"
        log.info("provider_events.batch_split", batch=len(batch), error=error)
    else:
        for submission in batch:
            submission.resolve(None)
        return
    for submission in batch:
        received = submission.item
        try:
            await process(pool, received.envelope, received.provider, received.event_id)
        except Exception as exc:
            submission.fail(exc)
        else:
            submission.resolve(None)


async def _process_claims(
    pool: asyncpg.Pool, claims: Sequence[EventClaim], *, isolate_rejection: bool
) -> None:
    """Lock the rows the envelopes name, run the handlers and settle the events, all in one
    transaction. Without `isolate_rejection`, a rejected event (or one whose data the database
    refuses) fails the whole transaction; with it, each event is settled in a savepoint of its own
    (`settle_alone`)."""
    unique = list({claim.envelope_id: claim for claim in claims}.values())
    async with pool.acquire() as conn, conn.transaction():
        locked = await lock_events(conn, unique)
        settlements: list[Settlement] = []
        handled: set[tuple[str, str, str]] = set()
        for claim in unique:
            found = locked[claim.envelope_id]
            if found is None:
                raise PermanentError(
                    f"no stored provider event {claim.provider}:{claim.event_id} of merchant {claim.merchant_id}"
                )
            if found.status != RECEIVED or claim.row_key in handled:
                continue  # handled before (a redelivery, a replayed envelope), or twice in this batch
            handled.add(claim.row_key)
            if isolate_rejection:
                await settle_alone(conn, found.event)
            else:
                settlements.append(await run_handler(conn, found.event))
        await _finish(conn, settlements)


async def _finish(conn: Connection, settlements: Sequence[Settlement]) -> None:
    """What the handled events leave besides their typed rows, one statement each for the batch:
    the invoices' owners, the events' outcomes and audit rows, and the domain events."""
    await record_invoice_owners(
        conn, [owner for settlement in settlements for owner in settlement.work.owners]
    )
    await settle(conn, settlements)
    emitted = [event for settlement in settlements for event in settlement.work.emitted]
    await outbox.enqueue(conn, Stream.PAYMENT_EVENTS, emitted)


async def run_handler(conn: Connection, stored: StoredEvent) -> Settlement:
    """Run the event's handler; how the event ends (`processed` or `ignored`). `Rejected`, and the
    database's refusals, propagate."""
    work = Work(conn, stored)
    handler = handler_for(stored.provider, stored.type)
    if handler is None:
        log.info("provider_event.ignored", provider=stored.provider, event_type=stored.type)
        return Settlement(work, IGNORED, f"no handler for {stored.provider} event type {stored.type!r}")
    await handler(work)
    return Settlement(work, PROCESSED)


async def settle_alone(conn: Connection, stored: StoredEvent) -> None:
    """Handle and settle one event in a savepoint: its effects, its owners, its outcome and audit
    row, its domain events. When the handler rejects it, or the database refuses something the
    event's content put in any of these (SQLSTATE class 22), none of that is kept: the event is
    settled `rejected` with the reason, which is final."""
    try:
        async with conn.transaction():  # a savepoint: a rejected event keeps none of its writes
            await _finish(conn, [await run_handler(conn, stored)])
        return
    except Rejected as exc:
        reason = exc.reason
    except asyncpg.exceptions.DataError as exc:
        reason = f"the database refused the event's data: {data_refusal(exc)}"
    log.warning("provider_event.rejected", provider=stored.provider, event_type=stored.type, reason=reason)
    await _finish(conn, [Settlement(Work(conn, stored), REJECTED, reason)])
