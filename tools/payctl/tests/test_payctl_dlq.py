"""`payctl dlq`: dead letters listed with their error, replayed onto their source stream, purged."""

from __future__ import annotations

import redis.asyncio as aioredis
from payctl_testkit import DEAD_LETTER_ERROR, DISPATCHER, PAYMENTS, BusState, Payctl, payment_event

from paystream.consumer import ConsumerConfig, StreamConsumer
from paystream.errors import PermanentError
from paystream.events import SEQUENCE_FIELD, STREAM_FIELD, Event, EventType, entry_fields

DLQ = f"{PAYMENTS}:dlq"


async def test_list_shows_each_dead_letter_with_its_error(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("dlq", "list", "--json")

    assert result.returncode == 0, result.stderr
    body = result.json()
    assert body["total"] == 1
    [letter] = body["dead_letters"]
    assert letter["id"] == bus.dead_letter_id
    assert letter["dlq"] == DLQ
    assert letter["source_stream"] == PAYMENTS
    assert letter["source_id"] == bus.entry_ids[2]
    assert letter["group"] == DISPATCHER
    assert letter["event_type"] == "payment.failed"
    assert letter["event_id"] == bus.events[2].id
    assert letter["merchant_id"] == "mer_b"
    assert letter["deliveries"] == 1
    assert letter["error"] == f"PermanentError: {DEAD_LETTER_ERROR}"
    assert 0 <= letter["failed_age_s"] < 30
    assert letter["replayable"] is True


async def test_list_filters_by_group(payctl: Payctl, bus: BusState) -> None:
    mine = await payctl("dlq", "list", PAYMENTS, "--group", DISPATCHER, "--json")
    others = await payctl("dlq", "list", PAYMENTS, "--group", "notifier", "--json")

    assert [letter["id"] for letter in mine.json()["dead_letters"]] == [bus.dead_letter_id]
    assert others.json()["dead_letters"] == []


async def test_show_decodes_the_dead_letter_and_its_full_error(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("dlq", "show", PAYMENTS, bus.dead_letter_id, "--json")

    assert result.returncode == 0, result.stderr
    body = result.json()
    assert body["event"]["id"] == bus.events[2].id
    assert body["dead_letter"]["error"] == f"PermanentError: {DEAD_LETTER_ERROR}"
    human = await payctl("dlq", "show", DLQ, bus.dead_letter_id)
    assert DEAD_LETTER_ERROR in human.stdout


async def test_replay_puts_the_event_back_on_its_stream_and_removes_the_dead_letter(
    payctl: Payctl, bus: BusState, redis: aioredis.Redis
) -> None:
    result = await payctl("dlq", "replay", PAYMENTS, bus.dead_letter_id, "--json")

    assert result.returncode == 0, result.stderr
    [replayed] = result.json()["replayed"]
    assert replayed["dlq_id"] == bus.dead_letter_id
    assert replayed["source_stream"] == PAYMENTS
    assert replayed["event_id"] == bus.events[2].id
    entries = await redis.xrange(PAYMENTS, min=replayed["new_id"], max=replayed["new_id"])
    assert Event.decode(entries[0][1][STREAM_FIELD]).id == bus.events[2].id
    assert entries[0][1][STREAM_FIELD] == bus.events[2].encode()
    assert await redis.xlen(DLQ) == 0

    # The group that dead-lettered it gets it again, and this time handles it.
    handled: list[str] = []

    async def dispatch(event: Event, _ctx: object) -> None:
        handled.append(event.id)

    consumer = StreamConsumer(redis, ConsumerConfig(group=DISPATCHER, streams=(PAYMENTS,)), dispatch)
    assert await consumer.run_once() == 1
    assert handled == [bus.events[2].id]


async def test_replay_keeps_the_events_number_in_its_payments_order(
    payctl: Payctl, redis: aioredis.Redis
) -> None:
    stream = "test:numbered"
    event = payment_event(EventType.PAYMENT_PENDING, "mer_a", "pay_9", "pending")
    await redis.xadd(stream, entry_fields(event.encode(), 2))  # type: ignore[arg-type]

    async def refuse(_event: Event, _ctx: object) -> None:
        raise PermanentError("the merchant's endpoint lookup failed")

    await StreamConsumer(redis, ConsumerConfig(group="test-group", streams=(stream,)), refuse).run_once()
    [(letter_id, letter)] = await redis.xrange(f"{stream}:dlq")
    assert letter[SEQUENCE_FIELD] == b"2"

    result = await payctl("dlq", "replay", stream, letter_id.decode(), "--json")
    assert result.returncode == 0, result.stderr
    [replayed] = result.json()["replayed"]
    [(_, fields)] = await redis.xrange(stream, min=replayed["new_id"], max=replayed["new_id"])
    assert fields == {STREAM_FIELD: event.encode(), SEQUENCE_FIELD: b"2"}


async def test_replay_dry_run_and_keep_leave_the_dead_letter(
    payctl: Payctl, bus: BusState, redis: aioredis.Redis
) -> None:
    dry = await payctl("dlq", "replay", PAYMENTS, "--all", "--dry-run", "--json")
    assert [row["dlq_id"] for row in dry.json()["replayed"]] == [bus.dead_letter_id]
    assert await redis.xlen(PAYMENTS) == 3

    kept = await payctl("dlq", "replay", PAYMENTS, "--all", "--keep", "--json")
    assert kept.returncode == 0, kept.stderr
    assert await redis.xlen(PAYMENTS) == 4
    assert await redis.xlen(DLQ) == 1


async def test_replay_needs_ids_or_all_and_reports_unknown_ids(payctl: Payctl, bus: BusState) -> None:
    neither = await payctl("dlq", "replay", PAYMENTS)
    unknown = await payctl("dlq", "replay", PAYMENTS, "1-0", "--json")

    assert neither.returncode == 2
    assert neither.stderr.strip() == "payctl: name the dead letters to act on, or pass --all"
    assert unknown.returncode == 1
    assert unknown.json()["skipped"] == [{"dlq_id": "1-0", "reason": f"not on {DLQ}"}]


async def test_purge_deletes_matching_dead_letters(
    payctl: Payctl, bus: BusState, redis: aioredis.Redis
) -> None:
    too_young = await payctl("dlq", "purge", PAYMENTS, "--older-than", "1h", "--json")
    assert too_young.json()["count"] == 0
    assert await redis.xlen(DLQ) == 1

    result = await payctl("dlq", "purge", PAYMENTS, "--all", "--json")

    assert result.returncode == 0, result.stderr
    assert result.json()["purged"] == [bus.dead_letter_id]
    assert await redis.xlen(DLQ) == 0


async def test_replay_keeps_the_dead_letter_until_a_replica_holds_the_replayed_entry(
    payctl: Payctl, bus: BusState, redis: aioredis.Redis
) -> None:
    # This Redis has no replica: WAIT 1 answers 0, so the replayed entry is not yet safe from a
    # failover, and removing its dead letter could lose the event.
    result = await payctl(
        "dlq", "replay", PAYMENTS, bus.dead_letter_id, "--json", env={"OUTBOX_WAIT_REPLICAS": "1"}
    )

    assert result.returncode == 1, result.stderr
    body = result.json()
    [replayed] = body["replayed"]
    [skipped] = body["skipped"]
    assert skipped["dlq_id"] == bus.dead_letter_id
    assert "replica" in skipped["reason"] and "kept" in skipped["reason"]
    entries = await redis.xrange(PAYMENTS, min=replayed["new_id"], max=replayed["new_id"])
    assert entries[0][1][STREAM_FIELD] == bus.events[2].encode()
    assert await redis.xlen(DLQ) == 1
