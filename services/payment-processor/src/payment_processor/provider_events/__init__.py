"""Inbound provider events: the payment processor claims the rows the API stored.

The API stores each verified webhook in `provider_events` (status `received`; the merchant whose
account signed it is part of its key, since event and object ids are unique only within one
merchant's provider account) and NOTIFYs `provider_events` once its transaction is over. Here a
claim loop (`ProviderEventClaimer`), woken by that notification and every `FALLBACK_POLL_S` as a
safety net, takes the waiting rows, most urgent first and then in arrival order, and in ONE
transaction runs each row's handler (typed tables, forward only), marks it `processed` / `ignored`
(no handler for the type) / `rejected` (unusable, with the reason), writes the audit rows and
enqueues the domain events on `payment:events`. The event travels once: no pointer on a stream, no
read-back. The row's status is the work queue and this path's inbox at once: a row that is no
longer `received` is never claimed again, so a replica or a restart never handles an event twice.

The payment handlers (Razorpay `payment.*`, PAYable notifications) are planned
(`transitions.PlannedHandler`): when a whole batch is of them and about distinct payments, the
batch's new payments are inserted by one statement (`apply_many`) instead of one each, and the
follow-ups (emits, owners, saved cards) run in claim order after; any other batch runs its handlers
one after another. Either way the result is the same.

The claim locks its rows `FOR UPDATE SKIP LOCKED`: replicas share the work without coordination,
and a processor killed mid-batch leaves nothing behind (its session ends, its transaction rolls
back, its rows wait again for the next claim).

`rejected` is final and covers both what a handler finds unusable (`Rejected`: a required field
missing, an amount out of range) and what the database refuses to store from the event's content
(SQLSTATE class 22: a NUL character, a number out of range, an invalid date): retrying the same
data cannot help. When anything in a batch fails, the transaction is rolled back and each of its
events is handled in a transaction of its own, so one bad event holds back nothing and a rejected
one keeps none of its writes. An event whose handling fails for another reason (a bug, a deadlock)
has the attempt counted; after `MAX_ATTEMPTS` it ends `failed` with the error in `last_error`, the
provider events' dead-letter state (`payctl provider-events` lists them, and `--redrive` puts them
back to wait once the cause is fixed).

Priority: dispute and downtime events are stored with the urgent priority and claimed first, so
under a backlog they wait at most for the batch in flight.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import asyncpg
from aiohttp import web

from payment_processor.keys import SETTINGS
from payment_processor.provider_events.payable import handle_notification
from payment_processor.provider_events.razorpay import RAZORPAY_HANDLERS, EventHandler
from payment_processor.provider_events.store import (
    IGNORED,
    PROCESSED,
    REJECTED,
    EventKey,
    Settlement,
    claim_one,
    claim_waiting,
    record_failure,
    settle,
    waiting_keys,
)
from payment_processor.provider_events.transitions import Advance, PlannedHandler, Transition, apply_many
from payment_processor.provider_events.work import Rejected, StoredEvent, Work
from paystream import outbox
from paystream.db import DATABASE_ERRORS, DATABASE_UNAVAILABLE_ERRORS, Connection, data_refusal
from paystream.events import PROVIDER_EVENTS_CHANNEL, Stream
from paystream.invoices import record_invoice_owners
from paystream.listen import Listener
from paystream.logging import get_logger
from paystream.loops import AGAIN, Again, run_until_stopped
from paystream.web import POOL, CleanupContext, background

log = get_logger(__name__)

MAX_BATCH = 100
# Failed attempts (not caused by the event's content) before an event ends `failed`.
MAX_ATTEMPTS = 5
# Safety net only: a missed NOTIFY (a listener reconnecting) costs at most this much latency.
FALLBACK_POLL_S = 1.0


class ProviderEventClaimer:
    """Claims and handles waiting provider events until stopped; one per processor process."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        listen_dsn: str,
        max_batch: int = MAX_BATCH,
        max_attempts: int = MAX_ATTEMPTS,
        fallback_poll_s: float = FALLBACK_POLL_S,
    ) -> None:
        self._pool = pool
        self._max_batch = max_batch
        self._max_attempts = max_attempts
        self._fallback_poll_s = fallback_poll_s
        self._wake = asyncio.Event()
        self._listener = Listener(listen_dsn, PROVIDER_EVENTS_CHANNEL, self._wake.set, name="provider events")

    async def run(self, stop: asyncio.Event) -> None:
        """Handle waiting events whenever the API notifies (and every `fallback_poll_s`)."""
        async with self._listener.running(stop):
            await run_until_stopped(
                "provider_events.claim",
                self._claim_step,
                stop,
                interval_s=self._fallback_poll_s,
                wake=self._wake,
                retry_on=DATABASE_ERRORS,
            )

    async def _claim_step(self) -> Again | None:
        handled = await handle_waiting(self._pool, self._max_batch, self._max_attempts)
        return AGAIN if handled >= self._max_batch else None


async def handle_waiting(
    pool: asyncpg.Pool, max_batch: int = MAX_BATCH, max_attempts: int = MAX_ATTEMPTS
) -> int:
    """Claim one batch of waiting events and handle it in one transaction; how many were claimed.
    When the batch fails, each waiting event is handled alone (`handle_one`)."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            events = await claim_waiting(conn, max_batch)
            if events:
                await _finish(conn, await run_handlers(conn, events))
            return len(events)
    except DATABASE_UNAVAILABLE_ERRORS:
        raise
    except Exception as exc:
        # A data refusal's own message quotes the refused value: name the refusal instead.
        log.info("provider_events.batch_split", error=data_refusal(exc) or f"{type(exc).__name__}: {exc}")
    # Rolled back, so its rows wait again: handle them one at a time (whatever waits now, in claim
    # order; a row another replica takes meanwhile is its own).
    keys = await waiting_keys(pool, max_batch)
    for key in keys:
        await handle_one(pool, key, max_attempts)
    return len(keys)


async def handle_one(pool: asyncpg.Pool, key: EventKey, max_attempts: int = MAX_ATTEMPTS) -> None:
    """Handle one waiting event in a transaction of its own (nothing if it no longer waits); a
    failure that its content did not cause is counted (see the module docstring)."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            event = await claim_one(conn, key)
            if event is not None:
                await settle_alone(conn, event)
        return
    except DATABASE_UNAVAILABLE_ERRORS:
        raise
    except Exception as exc:
        error = data_refusal(exc) or f"{type(exc).__name__}: {exc}"
        log.exception("provider_event.attempt_failed", provider=key[0], merchant_id=key[1], event_id=key[2])
    async with pool.acquire() as conn:
        status = await record_failure(conn, key, error[:2000], max_attempts)
    if status == "failed":
        log.error("provider_event.failed", provider=key[0], merchant_id=key[1], event_id=key[2], error=error)


def handler_for(provider: str, event_type: str) -> EventHandler | None:
    if provider == "payable":
        return handle_notification
    if provider == "razorpay":
        return RAZORPAY_HANDLERS.get(event_type)
    return None


async def _finish(conn: Connection, settlements: Sequence[Settlement]) -> None:
    """What the handled events leave besides their typed rows, one statement each for the batch:
    the invoices' owners, the events' outcomes and audit rows, and the domain events."""
    await record_invoice_owners(
        conn, [owner for settlement in settlements for owner in settlement.work.owners]
    )
    await settle(conn, settlements)
    emitted = [event for settlement in settlements for event in settlement.work.emitted]
    await outbox.enqueue(conn, Stream.PAYMENT_EVENTS, emitted)


async def run_handlers(conn: Connection, events: Sequence[StoredEvent]) -> list[Settlement]:
    """Run a batch's handlers, in claim order. When every event's handler is planned and their
    objects are distinct, the moves are applied together (`apply_many`: one INSERT for the new
    objects, grouped by table and columns) and then the follow-ups run in claim order; the result is
    the one of running them one after another, since no event's move can see another's."""
    planned = _planned(conn, events)
    if planned is None:
        return [await run_handler(conn, event) for event in events]
    groups: dict[tuple[str, tuple[str, ...]], list[int]] = {}
    for index, (_work, _handler, move) in enumerate(planned):
        # A table's rows differ in their columns only by the handler's own (`Advance.values`).
        groups.setdefault((move.table.name, tuple(move.columns)), []).append(index)
    transitions: dict[int, Transition] = {}
    for indexes in groups.values():
        moved = await apply_many([(planned[i][0], planned[i][2]) for i in indexes])
        transitions.update(zip(indexes, moved, strict=True))
    settlements = []
    for index, (work, handler, _move) in enumerate(planned):
        await handler.follow_up(work, transitions[index])
        settlements.append(Settlement(work, PROCESSED))
    return settlements


def _planned(
    conn: Connection, events: Sequence[StoredEvent]
) -> list[tuple[Work, PlannedHandler, Advance]] | None:
    """Each event's work, handler and planned move; None unless every handler is planned and no two
    moves are of one object. A plan's `Rejected` propagates (the batch is then split)."""
    planned: list[tuple[Work, PlannedHandler, Advance]] = []
    objects: set[tuple[str, str, str, str]] = set()
    for event in events:
        handler = handler_for(event.provider, event.type)
        if not isinstance(handler, PlannedHandler):
            return None
        work = Work(conn, event)
        move = handler.plan(work)
        key = (move.table.name, event.provider, event.merchant_id, move.entity_id)
        if key in objects:
            return None
        objects.add(key)
        planned.append((work, handler, move))
    return planned


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


CLAIMER = web.AppKey("provider_event_claimer", ProviderEventClaimer)


def provider_event_claimer() -> CleanupContext:
    """cleanup_ctx: the app's `ProviderEventClaimer`, run for the app's life under its supervisor."""

    async def run(app: web.Application, stop: asyncio.Event) -> None:
        await app[CLAIMER].run(stop)

    runner = background("provider-event-claimer", run)

    async def context(app: web.Application) -> AsyncIterator[None]:
        app[CLAIMER] = ProviderEventClaimer(app[POOL], listen_dsn=app[SETTINGS].common.database.url)
        async for _ in runner(app):
            yield

    return context
