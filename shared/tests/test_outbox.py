"""The transactional outbox and its relay, against real PostgreSQL and Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import redis.asyncio as aioredis

from paystream.events import SEQUENCE_FIELD, STREAM_FIELD, Event, EventType
from paystream.outbox import RELAY_LEADER_KEY, OutboxRelay, enqueue
from paystream.settings import OutboxSettings
from paystream_devstack.testing import eventually

STREAM = "payment:events"


def payment_event(n: int = 0) -> Event:
    return Event(type=EventType.PAYMENT_CREATED, merchant_id="mer_1", data={"n": n}, invoice_id=f"inv_{n}")


async def commit_events(pool: asyncpg.Pool, events: list[Event]) -> None:
    async with pool.acquire() as conn, conn.transaction():
        await enqueue(conn, STREAM, events)


async def stream_event_ids(redis: aioredis.Redis) -> list[str]:
    return [Event.decode(fields[STREAM_FIELD]).id for _, fields in await redis.xrange(STREAM)]


@pytest.fixture
async def relay_factory(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str
) -> AsyncIterator[list[tuple[asyncio.Event, asyncio.Task[None]]]]:
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []
    yield running
    for stop, _ in running:
        stop.set()
    for _, task in running:
        await asyncio.wait_for(task, 10)


def start_relay(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    dsn: str,
    running: list[tuple[asyncio.Event, asyncio.Task[None]]],
    *,
    batch_size: int = 500,
    fallback_poll_s: float = 60.0,
    takeover_delay_s: float = 0.0,
) -> OutboxRelay:
    relay = OutboxRelay(
        pool,
        redis,
        OutboxSettings(batch_size=batch_size),
        listen_dsn=dsn,
        fallback_poll_s=fallback_poll_s,
        takeover_delay_s=takeover_delay_s,
    )
    stop = asyncio.Event()
    running.append((stop, asyncio.create_task(relay.run(stop))))
    return relay


async def test_enqueue_refuses_to_run_outside_a_transaction(db_pool: asyncpg.Pool, clean_db: str) -> None:
    async with db_pool.acquire() as conn:
        with pytest.raises(RuntimeError, match="inside the state change's transaction"):
            await enqueue(conn, STREAM, [payment_event()])


async def test_rolled_back_transaction_publishes_nothing(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str
) -> None:
    with pytest.raises(ZeroDivisionError):
        async with db_pool.acquire() as conn, conn.transaction():
            await enqueue(conn, STREAM, [payment_event()])
            raise ZeroDivisionError
    relay = OutboxRelay(db_pool, redis, OutboxSettings(), listen_dsn=clean_db)
    assert await relay.publish_pending() == 0
    assert await redis.exists(STREAM) == 0


async def test_relay_wakes_on_commit_not_on_a_polling_interval(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str, relay_factory: list
) -> None:
    # The fallback poll is a minute: only the commit's NOTIFY can publish within the deadline.
    start_relay(db_pool, redis, clean_db, relay_factory, fallback_poll_s=60.0)
    first = payment_event(1)
    await commit_events(db_pool, [first])
    await eventually(lambda: _contains(redis, first.id), timeout=5, message="published after commit")
    later = payment_event(2)
    await commit_events(db_pool, [later])
    await eventually(lambda: _contains(redis, later.id), timeout=5, message="published on NOTIFY")

    # The entry reaches Redis just before the transaction that dequeues its row commits; the row
    # itself stays, unchanged, for replays and the timeline.
    async def dequeued() -> bool:
        return await db_pool.fetchval(
            """SELECT NOT EXISTS (SELECT FROM outbox_pending AS p JOIN outbox AS o USING (id)
                                  WHERE o.event_id = $1)
                      AND EXISTS (SELECT FROM outbox WHERE event_id = $1)""",
            later.id,
        )

    await eventually(dequeued, timeout=5, message="row taken off the queue of unpublished ids")


async def _contains(redis: aioredis.Redis, event_id: str) -> bool:
    return event_id in await stream_event_ids(redis)


async def test_rows_committed_while_no_relay_ran_are_published_on_start(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str, relay_factory: list
) -> None:
    # What a crash between commit and XADD leaves behind: committed, unpublished rows.
    events = [payment_event(n) for n in range(25)]
    await commit_events(db_pool, events)
    assert await redis.exists(STREAM) == 0
    start_relay(db_pool, redis, clean_db, relay_factory, batch_size=10)
    await eventually(lambda: _count_is(redis, 25), timeout=10)
    assert await stream_event_ids(redis) == [event.id for event in events], "published in commit order"
    assert await db_pool.fetchval("SELECT count(*) FROM outbox_pending") == 0


async def _count_is(redis: aioredis.Redis, expected: int) -> bool:
    return await redis.xlen(STREAM) == expected


async def test_two_relays_publish_each_row_once_and_in_order(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str, relay_factory: list
) -> None:
    start_relay(db_pool, redis, clean_db, relay_factory, batch_size=50)
    start_relay(db_pool, redis, clean_db, relay_factory, batch_size=50)
    committed: list[Event] = []
    for batch in range(20):
        events = [payment_event(batch * 10 + n) for n in range(10)]
        await commit_events(db_pool, events)
        committed.extend(events)
    await eventually(lambda: _count_is(redis, 200), timeout=15)
    published = await stream_event_ids(redis)
    assert published == [event.id for event in committed]


async def test_redis_down_keeps_rows_until_it_is_back(
    db_pool: asyncpg.Pool, clean_db: str, relay_factory: list
) -> None:
    from paystream.redis import create_redis
    from paystream.settings import RedisSettings
    from paystream_devstack.embedded import free_port

    dead = create_redis(RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0"))
    relay = OutboxRelay(db_pool, dead, OutboxSettings(), listen_dsn=clean_db)
    await commit_events(db_pool, [payment_event()])
    with pytest.raises(Exception, match="onnect"):
        await relay.publish_pending()
    assert await db_pool.fetchval("SELECT count(*) FROM outbox_pending") == 1
    await dead.aclose()


async def test_purge_keeps_recent_and_unpublished_rows(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str
) -> None:
    old, recent, unpublished_old = payment_event(1), payment_event(2), payment_event(3)
    await commit_events(db_pool, [old, recent, unpublished_old])
    relay = OutboxRelay(db_pool, redis, OutboxSettings(retention_days=7), listen_dsn=clean_db)
    await relay.publish_pending()
    await db_pool.execute(
        "UPDATE outbox SET created_at = now() - interval '8 days' WHERE event_id = ANY($1::uuid[])",
        [old.id, unpublished_old.id],
    )
    await db_pool.execute(
        "INSERT INTO outbox_pending (id) SELECT id FROM outbox WHERE event_id = $1", unpublished_old.id
    )
    assert await relay.purge_published() == 1
    remaining = {str(r["event_id"]) for r in await db_pool.fetch("SELECT event_id FROM outbox")}
    assert remaining == {recent.id, unpublished_old.id}


async def test_one_relay_leads_and_a_standby_takes_over_when_it_stops(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str, relay_factory: list
) -> None:
    first = start_relay(db_pool, redis, clean_db, relay_factory, fallback_poll_s=60.0)
    await eventually(lambda: first.is_leader, timeout=5, message="first relay leads")
    second = start_relay(db_pool, redis, clean_db, relay_factory, fallback_poll_s=60.0)
    before = payment_event(1)
    await commit_events(db_pool, [before])
    await eventually(lambda: _contains(redis, before.id), timeout=5)
    assert first.is_leader and not second.is_leader, "exactly one relay publishes"
    # Only the leader listens: a standby's process is not woken by every commit in the database.
    assert not second._wake.is_set()

    stop_first, task_first = relay_factory[0]
    stop_first.set()
    await asyncio.wait_for(task_first, 10)
    await eventually(lambda: second.is_leader, timeout=5, message="standby takes over")
    # Published within 5 s with a 60 s fallback poll: the new leader listens from its takeover on.
    after = payment_event(2)
    await commit_events(db_pool, [after])
    await eventually(lambda: _contains(redis, after.id), timeout=5, message="published by the new leader")
    assert await stream_event_ids(redis) == [before.id, after.id]


async def test_the_leader_forgets_handled_events_only_past_their_retention(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str
) -> None:
    old, recent = payment_event(1), payment_event(2)
    await db_pool.execute(
        """INSERT INTO inbox (consumer_group, event_id, processed_at)
           VALUES ('payment-processor', $1, now() - interval '15 days'), ('payment-processor', $2, now())""",
        old.id,
        recent.id,
    )
    relay = OutboxRelay(
        db_pool, redis, OutboxSettings(retention_days=7, inbox_retention_days=14), listen_dsn=clean_db
    )
    assert await relay.purge_handled() == 1
    kept = {str(row["event_id"]) for row in await db_pool.fetch("SELECT event_id FROM inbox")}
    assert kept == {recent.id}


def test_inbox_must_outlive_the_outbox() -> None:
    from paystream.errors import SettingsError

    with pytest.raises(SettingsError, match="INBOX_RETENTION_DAYS"):
        OutboxSettings(retention_days=7, inbox_retention_days=7)


async def test_a_leader_lock_held_in_another_database_does_not_hold_back_a_relay_of_last_resort(
    db_pool: asyncpg.Pool,
    redis: aioredis.Redis,
    clean_db: str,
    relay_factory: list,
    postgres_server_url: str,
) -> None:
    # Another database on the same server (another deployment, another test run) has a leader.
    elsewhere = await asyncpg.connect(postgres_server_url)
    try:
        assert await elsewhere.fetchval("SELECT pg_try_advisory_lock($1)", RELAY_LEADER_KEY)
        last_resort = start_relay(db_pool, redis, clean_db, relay_factory, takeover_delay_s=0.5)
        # Before: the other database's lock counted as a leader here, so this relay never led.
        await eventually(lambda: last_resort.is_leader, timeout=10, message="the last resort leads")
    finally:
        await elsewhere.close()


async def test_a_relay_of_last_resort_leads_only_after_seeing_no_leader_for_its_delay(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str, relay_factory: list
) -> None:
    last_resort = start_relay(db_pool, redis, clean_db, relay_factory, takeover_delay_s=2.0)
    regular = start_relay(db_pool, redis, clean_db, relay_factory)
    await eventually(lambda: regular.is_leader, timeout=5, message="the regular relay leads")
    await asyncio.sleep(3.0)  # past the delay: the lock was never free, so it never took it
    assert not last_resort.is_leader

    stop_regular, task_regular = relay_factory[1]
    stop_regular.set()
    await asyncio.wait_for(task_regular, 10)
    stopped_at = asyncio.get_running_loop().time()
    await eventually(lambda: last_resort.is_leader, timeout=6, message="the last resort takes over")
    assert asyncio.get_running_loop().time() - stopped_at >= 2.0
    event = payment_event(3)
    await commit_events(db_pool, [event])
    await eventually(lambda: _contains(redis, event.id), timeout=5, message="published by the last resort")


# --- numbering ordered events --------------------------------------------------------------------


def payment_step(event_type: EventType, payment_id: str, merchant_id: str = "mer_1") -> Event:
    return Event(type=event_type, merchant_id=merchant_id, data={"payment": {"id": payment_id}})


async def numbers(pool: asyncpg.Pool) -> list[tuple[str, int | None]]:
    """(event id, ordering_seq) of every outbox row, in id (publishing) order."""
    rows = await pool.fetch("SELECT event_id::text AS event_id, ordering_seq FROM outbox ORDER BY id")
    return [(row["event_id"], row["ordering_seq"]) for row in rows]


async def test_ordered_events_are_numbered_per_merchant_and_payment_in_commit_order(
    db_pool: asyncpg.Pool, clean_db: str
) -> None:
    created, pending = (
        payment_step(t, "pay_1") for t in (EventType.PAYMENT_CREATED, EventType.PAYMENT_PENDING)
    )
    other_payment = payment_step(EventType.PAYMENT_CREATED, "pay_2")
    # The same provider payment id at another merchant is another payment.
    other_merchant = payment_step(EventType.PAYMENT_CREATED, "pay_1", merchant_id="mer_2")
    unordered = payment_event(1)  # no payment, refund or dispute: no ordering key
    await commit_events(db_pool, [created, other_payment, pending, other_merchant, unordered])

    # A rolled-back writer gives its number back: the next event of the payment gets it.
    with pytest.raises(ZeroDivisionError):
        async with db_pool.acquire() as conn, conn.transaction():
            await enqueue(conn, STREAM, [payment_step(EventType.PAYMENT_SUCCESS, "pay_1")])
            raise ZeroDivisionError
    success = payment_step(EventType.PAYMENT_SUCCESS, "pay_1")
    refund = Event(
        type=EventType.REFUND_CREATED,
        merchant_id="mer_1",
        data={"refund": {"id": "rfnd_1", "payment_id": "pay_1"}},
    )
    await commit_events(db_pool, [success])
    await commit_events(db_pool, [refund])

    assert await numbers(db_pool) == [
        (created.id, 1),
        (other_payment.id, 1),
        (pending.id, 2),
        (other_merchant.id, 1),
        (unordered.id, None),
        (success.id, 3),
        (refund.id, 4),
    ]


async def test_concurrent_writers_of_one_payment_get_every_number_once(
    db_pool: asyncpg.Pool, clean_db: str
) -> None:
    events = [payment_step(EventType.PAYMENT_CAPTURED, "pay_busy") for _ in range(20)]
    await asyncio.gather(*(commit_events(db_pool, [event]) for event in events))
    assigned = [number for _, number in await numbers(db_pool)]
    # Each writer waits for the one before it: gapless, and in the order they committed.
    assert assigned == list(range(1, 21))


async def test_the_relay_publishes_the_number_as_the_entrys_seq_field(
    db_pool: asyncpg.Pool, redis: aioredis.Redis, clean_db: str
) -> None:
    ordered = [payment_step(t, "pay_1") for t in (EventType.PAYMENT_CREATED, EventType.PAYMENT_PENDING)]
    unordered = payment_event(1)
    await commit_events(db_pool, [*ordered, unordered])
    relay = OutboxRelay(db_pool, redis, OutboxSettings(), listen_dsn=clean_db)
    assert await relay.publish_pending() == 3

    entries = [fields for _, fields in await redis.xrange(STREAM)]
    assert [Event.decode(fields[STREAM_FIELD]).id for fields in entries] == [
        e.id for e in [*ordered, unordered]
    ]
    assert [fields.get(SEQUENCE_FIELD) for fields in entries] == [b"1", b"2", None]
