"""`payctl replay --since`: published outbox rows go back onto their streams after a Redis data loss."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
import redis.asyncio as aioredis
from payctl_testkit import PAYMENTS, Payctl, payment_event

from paystream.db import connect
from paystream.events import SEQUENCE_FIELD, STREAM_FIELD, Event, EventType

# Another stream an outbox row may name (one written by an earlier release, say): replay publishes
# every row to the stream it names.
PROVIDER = "legacy:events"


async def insert_outbox_row(
    conn: asyncpg.Connection,
    stream: str,
    event: Event,
    created_ago: timedelta,
    *,
    published: bool,
    ordering_seq: int | None = None,
) -> None:
    created_at = datetime.now(UTC) - created_ago
    await conn.execute(
        """INSERT INTO outbox (event_id, stream, event_type, merchant_id, payload, created_at, ordering_seq)
           VALUES ($1, $2, $3, $4, $5, $6, $7)""",
        event.id,
        stream,
        event.type.value,
        event.merchant_id,
        event.encode(),
        created_at,
        ordering_seq,
    )
    if published:  # what the relay does once its XADD is in
        await conn.execute(
            "DELETE FROM outbox_pending WHERE id = (SELECT id FROM outbox WHERE event_id = $1)", event.id
        )


@pytest.fixture
async def outbox(clean_db: str) -> dict[str, Event]:
    """Four rows: published 3 h ago, published 30 min ago, published 20 min ago on another stream,
    and one from 10 min ago the relay has not published yet."""
    events = {
        "old": payment_event(EventType.PAYMENT_CREATED, "mer_a", "pay_old", "created"),
        "recent": payment_event(EventType.PAYMENT_SUCCESS, "mer_a", "pay_1", "success"),
        "provider": Event(type=EventType.WEBHOOK_TEST, merchant_id="mer_a", data={"test": True}),
        "unpublished": payment_event(EventType.PAYMENT_CREATED, "mer_a", "pay_2", "created"),
    }
    conn = await connect(clean_db)
    try:
        await insert_outbox_row(conn, PAYMENTS, events["old"], timedelta(hours=3), published=True)
        await insert_outbox_row(
            conn, PAYMENTS, events["recent"], timedelta(minutes=30), published=True, ordering_seq=3
        )
        await insert_outbox_row(conn, PROVIDER, events["provider"], timedelta(minutes=20), published=True)
        await insert_outbox_row(conn, PAYMENTS, events["unpublished"], timedelta(minutes=10), published=False)
    finally:
        await conn.close()
    return events


async def stream_event_ids(redis: aioredis.Redis, stream: str) -> list[str]:
    return [Event.decode(fields[STREAM_FIELD]).id for _, fields in await redis.xrange(stream)]


async def test_replay_republishes_published_rows_since_the_given_time(
    payctl: Payctl, redis: aioredis.Redis, clean_db: str, outbox: dict[str, Event]
) -> None:
    result = await payctl("replay", "--since", "2h", "--json", env={"DATABASE_URL": clean_db})

    assert result.returncode == 0, result.stderr
    body = result.json()
    assert body["streams"] == {PAYMENTS: 1, PROVIDER: 1}
    assert body["replayed"] == 2
    assert await stream_event_ids(redis, PAYMENTS) == [outbox["recent"].id]
    assert await stream_event_ids(redis, PROVIDER) == [outbox["provider"].id]
    [(_, fields)] = await redis.xrange(PAYMENTS)
    assert fields[STREAM_FIELD] == outbox["recent"].encode()  # the stored payload, byte for byte
    assert fields[SEQUENCE_FIELD] == b"3"  # with its number in its payment's order, as first published
    [(_, provider_fields)] = await redis.xrange(PROVIDER)
    assert SEQUENCE_FIELD not in provider_fields  # an unordered event has none


async def test_replay_accepts_an_iso_time_and_a_dry_run_writes_nothing(
    payctl: Payctl, redis: aioredis.Redis, clean_db: str, outbox: dict[str, Event]
) -> None:
    since = (datetime.now(UTC) - timedelta(hours=4)).strftime("%Y-%m-%dT%H:%M:%SZ")

    result = await payctl("replay", "--since", since, "--dry-run", "--json", env={"DATABASE_URL": clean_db})

    assert result.returncode == 0, result.stderr
    assert result.json()["streams"] == {PAYMENTS: 2, PROVIDER: 1}
    assert await redis.exists(PAYMENTS, PROVIDER) == 0


async def test_replay_for_a_group_publishes_only_the_streams_it_reads(
    payctl: Payctl, redis: aioredis.Redis, clean_db: str, outbox: dict[str, Event]
) -> None:
    await redis.xgroup_create(PAYMENTS, "notifier", id="0", mkstream=True)

    result = await payctl(
        "replay", "--since", "2h", "--group", "notifier", "--json", env={"DATABASE_URL": clean_db}
    )

    assert result.returncode == 0, result.stderr
    assert result.json()["streams"] == {PAYMENTS: 1}
    assert await stream_event_ids(redis, PAYMENTS) == [outbox["recent"].id]
    assert await redis.exists(PROVIDER) == 0


async def test_replay_for_an_unknown_group_says_so(
    payctl: Payctl, clean_db: str, outbox: dict[str, Event]
) -> None:
    result = await payctl("replay", "--since", "2h", "--group", "nobody", env={"DATABASE_URL": clean_db})

    assert result.returncode == 1
    assert result.stderr.startswith("payctl: no stream has a consumer group 'nobody'")
