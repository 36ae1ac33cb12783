"""The ordering rule against the real delivery log: a payment's later event waits while an earlier one
has not been taken in (wherever it is), or while the endpoint's earlier delivery has not had its
first attempt, and goes as soon as both have happened; the safety net for an event that never comes.

The intake and the recorder run here without the stream consumer and the scheduler: a test hands
events to `DeliveryIntake.submit` with their numbers, as the consumer does, and records first
attempts itself, as the scheduler does after an HTTP attempt.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import asyncpg
import pytest
from dispatcher_testkit import MakeMerchant, NumberedEvent, SeededMerchant, numbered, payment_lifecycle

from paystream.events import ConsumerGroup, Event, EventType
from webhook_dispatcher.intake import DeliveryIntake
from webhook_dispatcher.models import AttemptOutcome, DeliveryStatus
from webhook_dispatcher.recorder import OutcomeRecorder
from webhook_dispatcher.upkeep import release_orphaned_holds

GROUP = ConsumerGroup.WEBHOOK_DISPATCHER
NOWHERE = "http://127.0.0.1:9/hooks"


class Dispatcher:
    """Intakes (one per simulated replica) and a recorder on the test database."""

    def __init__(self, pool: asyncpg.Pool, replicas: int) -> None:
        self.pool = pool
        self.intakes = [DeliveryIntake(pool, group=GROUP, on_due=lambda: None) for _ in range(replicas)]
        self.recorder = OutcomeRecorder(pool, on_due=lambda: None)
        for intake in self.intakes:
            intake.start()  # as the worker does: the first submit comes before the tasks' first step
        self.recorder.start()
        self._stop = asyncio.Event()
        self._tasks = [asyncio.create_task(i.run(self._stop)) for i in self.intakes]
        self._tasks.append(asyncio.create_task(self.recorder.run(self._stop)))

    async def take_in(self, *events: NumberedEvent | Event, replica: int = 0) -> None:
        for item in events:
            event, sequence = item if isinstance(item, tuple) else (item, None)
            await self.intakes[replica].submit(event, sequence)

    async def first_attempt(self, delivery_id: str) -> None:
        """What the scheduler does: lease the due row, attempt it (the merchant answers 200), record."""
        token = uuid.uuid4()
        row = await self.pool.fetchrow(
            """UPDATE webhook_deliveries SET lease_token = $2, due_at = now() + interval '60 seconds'
               WHERE id = $1 AND status = 'pending' AND due_at <= now() AND attempts = 0
               RETURNING merchant_id, endpoint_id, order_key, ordering_seq""",
            delivery_id,
            token,
        )
        assert row is not None, f"{delivery_id} is not due"
        self.recorder.record(
            AttemptOutcome(
                delivery_id=delivery_id,
                lease_token=token,
                merchant_id=row["merchant_id"],
                endpoint_id=row["endpoint_id"],
                order_key=row["order_key"],
                ordering_seq=row["ordering_seq"],
                status=DeliveryStatus.SUCCESS,
                attempted=True,
                first_attempt=True,
                attempted_at=datetime.now(UTC),
                duration_ms=1,
                response_code=200,
            )
        )
        await self.recorder.flushed()

    async def close(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)


@pytest.fixture
async def dispatcher(db_pool: asyncpg.Pool) -> AsyncIterator[Callable[..., Dispatcher]]:
    opened: list[Dispatcher] = []

    def open_(replicas: int = 1) -> Dispatcher:
        opened.append(Dispatcher(db_pool, replicas))
        return opened[-1]

    yield open_
    for item in opened:
        await item.close()


async def states(pool: asyncpg.Pool, merchant: SeededMerchant) -> dict[str, str]:
    """event type -> 'held' | 'due' | 'attempted', for the merchant's deliveries."""
    rows = await pool.fetch(
        """SELECT event_type,
                  CASE WHEN attempts > 0 THEN 'attempted' WHEN due_at IS NULL THEN 'held' ELSE 'due' END AS state
           FROM webhook_deliveries WHERE merchant_id = $1""",
        merchant.id,
    )
    return {row["event_type"]: row["state"] for row in rows}


async def delivery_id(pool: asyncpg.Pool, merchant: SeededMerchant, event_type: str) -> str:
    found: str = await pool.fetchval(
        "SELECT id FROM webhook_deliveries WHERE merchant_id = $1 AND event_type = $2",
        merchant.id,
        event_type,
    )
    return found


async def test_a_later_event_taken_in_first_waits_for_the_earlier_one_and_its_first_attempt(
    dispatcher: Callable[..., Dispatcher], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant(NOWHERE)
    kit = dispatcher()
    created, pending, success = numbered(*payment_lifecycle(merchant.id, "pay_1"))

    # `created` is still in a dead consumer's pending list: `pending` is held, though it is the first
    # event of its payment this dispatcher sees.
    await kit.take_in(pending)
    assert await states(db_pool, merchant) == {"payment.pending": "held"}

    # `created` comes back: it goes first, and `pending` still waits for its first attempt.
    await kit.take_in(created)
    assert await states(db_pool, merchant) == {"payment.created": "due", "payment.pending": "held"}

    # `success` arrives meanwhile: behind `pending`, which has not had its first attempt either.
    await kit.take_in(success)
    assert (await states(db_pool, merchant))["payment.success"] == "held"

    await kit.first_attempt(await delivery_id(db_pool, merchant, "payment.created"))
    assert await states(db_pool, merchant) == {
        "payment.created": "attempted",
        "payment.pending": "due",
        "payment.success": "held",
    }
    await kit.first_attempt(await delivery_id(db_pool, merchant, "payment.pending"))
    assert (await states(db_pool, merchant))["payment.success"] == "due"


async def test_an_event_no_endpoint_receives_still_lets_its_successors_go(
    dispatcher: Callable[..., Dispatcher], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant(NOWHERE, events=["payment.success"])
    kit = dispatcher()
    created, pending, success = numbered(*payment_lifecycle(merchant.id, "pay_1"))

    await kit.take_in(success)
    assert await states(db_pool, merchant) == {"payment.success": "held"}
    await kit.take_in(created)  # no row for it: the endpoint does not receive it
    assert await states(db_pool, merchant) == {"payment.success": "held"}  # `pending` is still missing
    await kit.take_in(pending)
    assert await states(db_pool, merchant) == {"payment.success": "due"}

    # The same for a merchant with no endpoint at all when its first events were taken in.
    later = await make_merchant(NOWHERE)
    await db_pool.execute("UPDATE webhook_endpoints SET enabled = false WHERE id = $1", later.endpoint_id)
    created, pending, success = numbered(*payment_lifecycle(later.id, "pay_1"))
    await kit.take_in(created, pending)
    await db_pool.execute("UPDATE webhook_endpoints SET enabled = true WHERE id = $1", later.endpoint_id)
    await kit.take_in(success)
    assert await states(db_pool, later) == {"payment.success": "due"}


async def test_a_redelivered_event_changes_nothing(
    dispatcher: Callable[..., Dispatcher], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant(NOWHERE)
    kit = dispatcher()
    created, pending, _ = numbered(*payment_lifecycle(merchant.id, "pay_1"))
    await kit.take_in(created, pending, created, pending)
    rows = await db_pool.fetch(
        "SELECT event_type FROM webhook_deliveries WHERE merchant_id = $1", merchant.id
    )
    assert sorted(row["event_type"] for row in rows) == ["payment.created", "payment.pending"]
    assert await states(db_pool, merchant) == {"payment.created": "due", "payment.pending": "held"}


async def test_events_without_a_number_are_never_held(
    dispatcher: Callable[..., Dispatcher], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant(NOWHERE)
    kit = dispatcher()
    # Written before numbering existed (no `seq`), or without an ordering key at all.
    pending = payment_lifecycle(merchant.id, "pay_1")[1]
    token = Event(type=EventType.TOKEN_SAVED, merchant_id=merchant.id, data={"token": {"last4": "1111"}})
    await kit.take_in(pending, (token, 5))
    assert await states(db_pool, merchant) == {"payment.pending": "due", "token.saved": "due"}


async def test_two_replicas_taking_in_one_payments_events_in_any_order_send_them_in_order(
    dispatcher: Callable[..., Dispatcher], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant(NOWHERE)
    kit = dispatcher(replicas=2)
    shuffler = random.Random(13)
    payments = [f"pay_{n:03d}" for n in range(40)]
    lifecycles = {payment: numbered(*payment_lifecycle(merchant.id, payment)) for payment in payments}

    async def replica(number: int, events: list[NumberedEvent]) -> None:
        for event in events:
            await kit.take_in(event, replica=number)
            await asyncio.sleep(0)  # let the other replica's batch interleave

    # Each payment's events split over the two replicas and taken in out of order, concurrently.
    work: list[list[NumberedEvent]] = [[], []]
    for events in lifecycles.values():
        for event in shuffler.sample(events, len(events)):
            work[shuffler.randrange(2)].append(event)
    await asyncio.gather(replica(0, work[0]), replica(1, work[1]))

    # Then the scheduler's side: whatever is due goes, in any order; each key must always offer
    # exactly its next delivery, never a later one.
    sent: dict[str, list[int]] = {payment: [] for payment in payments}
    while True:
        due = await db_pool.fetch(
            """SELECT id, order_key, ordering_seq FROM webhook_deliveries
               WHERE merchant_id = $1 AND status = 'pending' AND attempts = 0 AND due_at IS NOT NULL""",
            merchant.id,
        )
        if not due:
            break
        assert len({row["order_key"] for row in due}) == len(due), "two deliveries of one payment due at once"
        for row in shuffler.sample(list(due), len(due)):
            assert row["ordering_seq"] == len(sent[row["order_key"]]) + 1
            sent[row["order_key"]].append(row["ordering_seq"])
            await kit.first_attempt(row["id"])
    assert sent == {payment: [1, 2, 3] for payment in payments}


async def test_a_hold_for_an_event_that_never_comes_ends_after_the_grace_period(
    dispatcher: Callable[..., Dispatcher], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant(NOWHERE)
    kit = dispatcher()
    created, pending, success = numbered(*payment_lifecycle(merchant.id, "pay_1"))
    await kit.take_in(pending, success)  # `created` was dead-lettered, say
    assert await release_orphaned_holds(db_pool, grace_s=60) == []  # young holds are left alone

    await age_holds(db_pool, merchant, seconds=61)
    assert await release_orphaned_holds(db_pool, grace_s=60) == [
        await delivery_id(db_pool, merchant, "payment.pending")
    ]
    # Given up on `created` only: `success` still goes after `pending`'s first attempt.
    assert await states(db_pool, merchant) == {"payment.pending": "due", "payment.success": "held"}
    assert await release_orphaned_holds(db_pool, grace_s=60) == []
    await kit.first_attempt(await delivery_id(db_pool, merchant, "payment.pending"))
    assert (await states(db_pool, merchant))["payment.success"] == "due"

    # `created`, replayed from the dead-letter stream later, goes out at once: too late for order.
    await kit.take_in(created)
    assert (await states(db_pool, merchant))["payment.created"] == "due"


async def test_the_safety_net_leaves_a_hold_behind_an_unattempted_delivery_alone(
    dispatcher: Callable[..., Dispatcher], make_merchant: MakeMerchant, db_pool: asyncpg.Pool
) -> None:
    merchant = await make_merchant(NOWHERE)
    kit = dispatcher()
    created, pending, _ = numbered(*payment_lifecycle(merchant.id, "pay_1"))
    await kit.take_in(created, pending)
    await age_holds(db_pool, merchant, seconds=3600)
    # Nothing is missing: `pending` waits for `created`'s first attempt, however long that takes.
    assert await release_orphaned_holds(db_pool, grace_s=60) == []
    assert await states(db_pool, merchant) == {"payment.created": "due", "payment.pending": "held"}

    # A predecessor removed by hand: the sweep makes up for the release that never came.
    await db_pool.execute(
        "DELETE FROM webhook_deliveries WHERE merchant_id = $1 AND event_type = 'payment.created'",
        merchant.id,
    )
    assert await release_orphaned_holds(db_pool, grace_s=60) == [
        await delivery_id(db_pool, merchant, "payment.pending")
    ]


async def age_holds(pool: asyncpg.Pool, merchant: SeededMerchant, *, seconds: int) -> None:
    """Make the merchant's holds `seconds` old (instead of waiting that long)."""
    await pool.execute(
        """UPDATE webhook_deliveries SET updated_at = now() - make_interval(secs => $2)
           WHERE merchant_id = $1 AND due_at IS NULL""",
        merchant.id,
        seconds,
    )


@pytest.mark.parametrize(
    ("through", "taken", "expected"),
    [
        (0, [], (0, [])),
        (0, [1], (1, [])),
        (0, [2], (0, [2])),
        (0, [3, 1, 2], (3, [])),
        (0, [1, 3, 3, 5], (1, [3, 5])),
        (2, [1, 2, 4], (2, [4])),
        (2, [3, 4, 6, 7], (4, [6, 7])),
        (5, [], (5, [])),
    ],
)
async def test_a_key_moves_up_over_the_numbers_that_follow_it_without_a_gap(
    db_pool: asyncpg.Pool, through: int, taken: list[int], expected: tuple[int, list[int]]
) -> None:
    row = await db_pool.fetchrow("SELECT * FROM webhook_order_taken($1, $2::bigint[])", through, taken)
    assert row is not None
    assert (row["taken_through"], row["taken_ahead"]) == expected
