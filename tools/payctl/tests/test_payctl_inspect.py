"""payctl's read-only commands against a real Redis in a known state: the figures it prints."""

from __future__ import annotations

import asyncio
import signal

import orjson
import redis.asyncio as aioredis
from payctl_testkit import (
    DISPATCHER,
    PAYCTL_COMMAND,
    PAYMENTS,
    PROCESSOR,
    BusState,
    Payctl,
    payctl_environment,
    payment_event,
    publish,
)

from paystream.events import EventType


async def test_streams_reports_length_ids_ages_groups_and_dead_letters(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("streams", "--json")

    assert result.returncode == 0, result.stderr
    streams = {item["stream"]: item for item in result.json()["streams"]}
    payments = streams[PAYMENTS]
    assert payments["exists"] is True
    assert payments["length"] == 3
    assert payments["first_id"] == bus.entry_ids[0]
    assert payments["last_id"] == bus.entry_ids[2]
    assert 120 <= payments["first_age_s"] < 150
    assert 1 <= payments["last_age_s"] < 30
    assert sorted(payments["groups"]) == [PROCESSOR, DISPATCHER]
    assert payments["dead_letters"] == 1
    assert set(streams) == {PAYMENTS}


async def test_streams_table_for_people_uses_human_durations(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("streams")

    assert result.returncode == 0, result.stderr
    header, *rows = result.stdout.splitlines()
    assert header.split()[:3] == ["STREAM", "LENGTH", "FIRST"]
    payments = next(row for row in rows if row.startswith(PAYMENTS + " "))
    assert bus.entry_ids[0] in payments
    assert "2m" in payments  # the first entry is two minutes old


async def test_groups_report_pending_lag_oldest_pending_and_consumer_idle(
    payctl: Payctl, bus: BusState
) -> None:
    result = await payctl("groups", PAYMENTS, "--json")

    assert result.returncode == 0, result.stderr
    groups = {item["group"]: item for item in result.json()["groups"]}
    processor = groups[PROCESSOR]
    assert processor["pending"] == 1
    assert processor["lag"] == 1  # counted on Redis 6.2, which does not report it
    assert processor["lag_capped"] is False
    assert processor["last_delivered_id"] == bus.entry_ids[1]
    assert processor["oldest_pending_id"] == bus.entry_ids[0]
    assert 120 <= processor["oldest_pending_age_s"] < 150
    assert 90 <= processor["oldest_pending_idle_s"] < 120
    assert processor["oldest_pending_deliveries"] == 3
    assert processor["oldest_pending_consumer"] == "c1"
    assert [consumer["name"] for consumer in processor["consumers"]] == ["c1"]
    assert processor["consumers"][0]["pending"] == 1
    assert processor["consumers"][0]["idle_s"] < 60

    dispatcher = groups[DISPATCHER]
    assert (dispatcher["pending"], dispatcher["lag"]) == (0, 0)
    assert dispatcher["last_delivered_id"] == bus.entry_ids[2]
    assert dispatcher["oldest_pending_id"] is None


async def test_groups_lag_counts_entries_after_the_last_delivered_one(
    payctl: Payctl, bus: BusState, redis: aioredis.Redis
) -> None:
    for index in range(4):
        await publish(
            redis, PAYMENTS, payment_event(EventType.PAYMENT_PENDING, "mer_a", f"pay_{index}", "pending")
        )

    result = await payctl("groups", "--group", PROCESSOR, "--json")

    [processor] = result.json()["groups"]
    assert processor["lag"] == 5


async def test_groups_of_a_missing_stream_is_not_found(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("groups", "no:such:stream")

    assert result.returncode == 1
    assert result.stderr.strip() == "payctl: stream 'no:such:stream' does not exist"


async def test_pending_lists_entries_with_consumer_idle_deliveries_and_type(
    payctl: Payctl, bus: BusState
) -> None:
    result = await payctl("pending", PAYMENTS, PROCESSOR, "--json")

    assert result.returncode == 0, result.stderr
    body = result.json()
    assert body["total_pending"] == 1
    [entry] = body["entries"]
    assert entry["id"] == bus.entry_ids[0]
    assert entry["consumer"] == "c1"
    assert entry["deliveries"] == 3
    assert 90 <= entry["idle_s"] < 120
    assert entry["event_type"] == "payment.created"
    assert entry["event_id"] == bus.events[0].id
    assert entry["merchant_id"] == "mer_a"


async def test_pending_filters_by_idle_time_and_consumer(payctl: Payctl, bus: BusState) -> None:
    idle_enough = await payctl("pending", PAYMENTS, PROCESSOR, "--idle", "1m", "--json")
    too_recent = await payctl("pending", PAYMENTS, PROCESSOR, "--idle", "10m", "--json")
    other_consumer = await payctl("pending", PAYMENTS, PROCESSOR, "--consumer", "c9", "--json")

    assert [entry["id"] for entry in idle_enough.json()["entries"]] == [bus.entry_ids[0]]
    assert too_recent.json()["entries"] == []
    assert other_consumer.json()["entries"] == []


async def test_pending_table_shows_human_idle_time(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("pending", PAYMENTS, PROCESSOR)

    row = next(line for line in result.stdout.splitlines() if line.startswith(bus.entry_ids[0]))
    assert "1m3" in row  # idle 1m30s-ish
    assert "payment.created" in row


async def test_pending_of_an_unknown_group_is_a_clear_error(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("pending", PAYMENTS, "no-such-group")

    assert result.returncode == 1
    assert result.stderr.strip() == f"payctl: no consumer group 'no-such-group' on stream '{PAYMENTS}'"


async def test_show_decodes_one_event_and_where_each_group_stands(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("show", PAYMENTS, bus.entry_ids[0], "--json")

    assert result.returncode == 0, result.stderr
    body = result.json()
    assert body["id"] == bus.entry_ids[0]
    assert body["event"]["id"] == bus.events[0].id
    assert body["event"]["type"] == "payment.created"
    assert body["event"]["data"]["payment"]["id"] == "pay_1"
    states = {state["group"]: state for state in body["groups"]}
    assert states[PROCESSOR]["state"] == "pending"
    assert states[PROCESSOR]["deliveries"] == 3
    assert states[DISPATCHER]["state"] == "acknowledged"


async def test_show_of_a_missing_entry_is_not_found(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("show", PAYMENTS, "1-0")

    assert result.returncode == 1
    assert result.stderr.strip() == f"payctl: no entry 1-0 on {PAYMENTS}"


async def test_tail_follows_new_entries_with_filters_and_exits_after_count(
    payctl: Payctl, bus: BusState, redis: aioredis.Redis
) -> None:
    follow = asyncio.create_task(
        payctl(
            "tail",
            PAYMENTS,
            "--from",
            bus.entry_ids[2],
            "--type",
            "payment.success",
            "--merchant",
            "mer_a",
            "--count",
            "2",
            "--json",
        )
    )
    wanted_first = payment_event(EventType.PAYMENT_SUCCESS, "mer_a", "pay_7", "success")
    other_merchant = payment_event(EventType.PAYMENT_SUCCESS, "mer_b", "pay_8", "success")
    other_type = payment_event(EventType.PAYMENT_CREATED, "mer_a", "pay_9", "created")
    wanted_second = payment_event(EventType.PAYMENT_SUCCESS, "mer_a", "pay_9", "success")
    for event in (wanted_first, other_merchant, other_type, wanted_second):
        await publish(redis, PAYMENTS, event)

    result = await asyncio.wait_for(follow, 30)

    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line]
    assert [orjson.loads(line)["event"]["id"] for line in lines] == [wanted_first.id, wanted_second.id]


async def test_tail_prints_one_readable_line_per_event(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("tail", PAYMENTS, "--from", "0", "--count", "3")

    lines = result.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].startswith(bus.entry_ids[0])
    assert "payment.created" in lines[0] and "mer_a" in lines[0] and f"event={bus.events[0].id}" in lines[0]
    assert "payment pay_2 failed" in lines[2]


async def test_tail_stops_cleanly_on_ctrl_c(redis_url: str, bus: BusState) -> None:
    process = await asyncio.create_subprocess_exec(
        *PAYCTL_COMMAND,
        "tail",
        PAYMENTS,
        env=payctl_environment({"REDIS_URL": redis_url}),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stderr is not None
    banner = await asyncio.wait_for(process.stderr.readline(), 30)
    assert banner.startswith(f"following {PAYMENTS}".encode())

    process.send_signal(signal.SIGINT)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 10)

    assert process.returncode == 0
    assert b"Traceback" not in stderr
    assert stdout == b""
