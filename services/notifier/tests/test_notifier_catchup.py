"""Catch-up: a client reconnecting with the last event id it saw gets what it missed, then live
events, with nothing missing and nothing twice."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
import redis.asyncio as aioredis
from aiohttp.test_utils import TestServer

from notifier.app import create_app
from notifier.catchup import CatchUpResult, CatchUpScanner
from notifier.keys import HUB
from notifier.positions import stream_entries
from notifier.rooms import Emission
from paystream.events import Event, EventType, Stream
from paystream.ordering import ordering_key
from paystream.shards import StreamLayout
from paystream_devstack.testing import eventually
from paystream_devstack.testing.notifier_client import (
    MERCHANT_A,
    MERCHANT_B,
    Client,
    ClientFactory,
    OwnerRecorder,
    ServerFactory,
    make_token,
    notifier_settings,
    payment_event,
    publish,
)


def catch_up_summaries(client: Client) -> list[dict[str, object]]:
    return list(client.events("catchup:complete"))


def uuid7_at(millis: int) -> str:
    """A well-formed UUIDv7 minted at `millis`."""
    random_bits = int.from_bytes(os.urandom(10), "big")
    value = (millis << 80) | (0x7 << 76) | (random_bits & ((1 << 76) - 1))
    value = (value & ~(0xC << 60)) | (0x8 << 60)  # RFC 4122 variant
    return str(uuid.UUID(int=value))


@pytest.mark.parametrize("explicit", [False, True], ids=["resume-point", "explicit-lastEventId"])
async def test_reconnect_replays_missed_events_then_goes_live(
    notifier_url: str,
    connect_client: ClientFactory,
    owners: OwnerRecorder,
    redis: aioredis.Redis,
    explicit: bool,
) -> None:
    await owners(MERCHANT_A, "ord_1")
    # Stays connected: once it has an event, so has the reader, and a catch-up sees it.
    watcher = await connect_client(notifier_url, token=make_token(MERCHANT_A, sub="watcher"))
    first = await connect_client(notifier_url, token=make_token(MERCHANT_A))
    assert await first.subscribe("ord_1") == {"ok": True}
    seen = [payment_event(EventType.PAYMENT_PENDING, invoice_id="ord_1"), payment_event(invoice_id="ord_2")]
    await publish(redis, *seen)
    await first.wait_for_id(seen[-1].id)
    await first.close()

    missed = [
        payment_event(EventType.PAYMENT_SUCCESS, invoice_id="ord_1"),
        payment_event(merchant_id=MERCHANT_B, invoice_id="ord_1"),  # another merchant's: not replayed
        payment_event(EventType.PAYMENT_PENDING, invoice_id="ord_3"),
    ]
    await publish(redis, *missed)
    await watcher.wait_for_id(missed[-1].id)
    last_seen = first.last_event_id()
    assert last_seen == seen[-1].id

    second = await connect_client(notifier_url, token=make_token(MERCHANT_A), last_event_id=last_seen)
    await second.wait_for("catchup:complete")
    # Re-subscribing replays what the invoice's room had since the socket's resume point.
    assert await second.subscribe("ord_1", last_event_id=last_seen if explicit else None) == {"ok": True}
    await second.wait_for("catchup:complete", 2)
    live = payment_event(EventType.PAYMENT_FAILED, invoice_id="ord_1")
    await publish(redis, live)
    await second.wait_for("payment:completed", 2)

    assert second.event_ids("payment:status-update") == [missed[0].id, missed[2].id, live.id]
    assert second.event_ids("payment:completed") == [missed[0].id, live.id]
    assert [item.name for item in second.received][:3] == [
        "payment:status-update",
        "payment:status-update",
        "catchup:complete",
    ]
    assert catch_up_summaries(second) == [
        {"scope": "connect", "lastEventId": last_seen, "replayed": 2, "complete": True},
        {
            "scope": "subscribe",
            "lastEventId": last_seen,
            "replayed": 1,
            "complete": True,
            "invoiceId": "ord_1",
        },
    ]


def received_or_done(client: Client, count: int, done: asyncio.Event) -> bool:
    return done.is_set() or len(client.events("payment:status-update")) >= count


async def test_reconnects_under_steady_traffic_lose_and_repeat_nothing(
    notifier_url: str, connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    published: list[str] = []
    done = asyncio.Event()

    async def produce() -> None:
        for batch in range(120):
            events = [payment_event(invoice_id=f"ord_{batch}_{n}") for n in range(3)]
            await publish(redis, *events)
            published.extend(event.id for event in events)
            await asyncio.sleep(0.004)  # pacing the load, not waiting for a result
        done.set()

    delivered: list[str] = []
    client = await connect_client(notifier_url, token=make_token(MERCHANT_A))
    producer = asyncio.create_task(produce())
    reconnects = 0
    while not done.is_set():
        # Drop the connection a few events in, then come back naming the last event seen.
        await eventually(
            partial(received_or_done, client, len(client.events("payment:status-update")) + 20, done)
        )
        await client.close()
        delivered.extend(client.event_ids("payment:status-update"))
        client = await connect_client(notifier_url, token=make_token(MERCHANT_A), last_event_id=delivered[-1])
        reconnects += 1
    await producer
    await eventually(lambda: published[-1] in delivered + client.event_ids("payment:status-update"))
    delivered.extend(client.event_ids("payment:status-update"))

    assert reconnects >= 3
    assert len(delivered) == len(set(delivered))
    assert delivered == published
    assert all(summary["complete"] for summary in catch_up_summaries(client))


async def test_catch_up_respects_the_salon_scope(
    notifier_url: str, connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    seen = payment_event(salon_id="SALON1", invoice_id="seen")
    await publish(redis, seen)
    missed = [
        payment_event(salon_id="SALON2", invoice_id="other_salon"),
        payment_event(salon_id="SALON1", invoice_id="mine"),
        payment_event(invoice_id="no_salon"),
    ]
    await publish(redis, *missed)

    client = await connect_client(
        notifier_url, token=make_token(MERCHANT_A, salon_id="SALON1"), last_event_id=seen.id
    )
    await client.wait_for("catchup:complete")
    marker = payment_event(salon_id="SALON1", invoice_id="marker")
    await publish(redis, marker)
    await client.wait_for_id(marker.id)

    assert [update["invoiceId"] for update in client.events("payment:status-update")] == ["mine", "marker"]


async def test_a_republished_event_is_replayed_once(
    notifier_url: str, connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    seen, missed = payment_event(invoice_id="a"), payment_event(invoice_id="b")
    await publish(redis, seen, missed, seen, missed)

    client = await connect_client(notifier_url, token=make_token(MERCHANT_A), last_event_id=seen.id)
    await client.wait_for("catchup:complete")
    marker = payment_event(invoice_id="marker")
    await publish(redis, marker)
    await client.wait_for_id(marker.id)

    assert client.event_ids("payment:status-update") == [missed.id, marker.id]


@pytest.mark.parametrize(
    ("last_event_name", "owner", "completed_again"),
    [
        ("payment:status-update", MERCHANT_A, True),
        ("payment:completed", MERCHANT_A, False),
        (None, MERCHANT_A, False),  # without a name the whole last event counts as seen
        ("no-such-packet", MERCHANT_A, False),
        ("payment:status-update", MERCHANT_B, False),  # another merchant's event id gets nothing
    ],
    ids=["after-status-update", "after-completed", "no-name", "unknown-name", "foreign-event"],
)
async def test_a_reconnect_after_half_an_event_gets_the_rest_of_it(
    notifier_url: str,
    connect_client: ClientFactory,
    owners: OwnerRecorder,
    redis: aioredis.Redis,
    last_event_name: str | None,
    owner: str,
    completed_again: bool,
) -> None:
    # A success is two packets (status-update, then completed); a process killed between them
    # leaves its client with the first. Naming that packet gets the client the rest of the event.
    await owners(MERCHANT_A, "ord_1")
    watcher = await connect_client(notifier_url, token=make_token(MERCHANT_A, sub="watcher"))
    split = payment_event(EventType.PAYMENT_SUCCESS, merchant_id=owner, invoice_id="ord_1")
    after = payment_event(EventType.PAYMENT_PENDING, invoice_id="ord_1")
    await publish(redis, split, after)
    await watcher.wait_for_id(after.id)

    client = await connect_client(
        notifier_url, token=make_token(MERCHANT_A), last_event_id=split.id, last_event_name=last_event_name
    )
    await client.wait_for("catchup:complete")
    assert await client.subscribe("ord_1") == {"ok": True}
    await client.wait_for("catchup:complete", 2)
    marker = payment_event(EventType.PAYMENT_FAILED, invoice_id="ord_1")
    await publish(redis, marker)
    await client.wait_for_id(marker.id, name="payment:completed")

    assert client.event_ids("payment:completed") == [*([split.id] if completed_again else []), marker.id]
    assert client.event_ids("payment:status-update") == [after.id, marker.id]
    assert all(summary["complete"] for summary in catch_up_summaries(client))


async def test_catch_up_that_cannot_be_complete_says_so(
    start_notifier: ServerFactory, connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    url = await start_notifier(NOTIFIER_CATCHUP_MAX_EVENTS="3")
    watcher = await connect_client(url, token=make_token(MERCHANT_A, sub="watcher"))
    seen = payment_event(invoice_id="seen")
    missed = [payment_event(invoice_id=f"missed_{n}") for n in range(5)]
    await publish(redis, seen, *missed)
    await watcher.wait_for_id(missed[-1].id)  # the reader is past them: a catch-up would see them all
    cases = {
        "not-an-id": "lastEventId is not an event id",
        str(uuid.uuid4()): "lastEventId is not an event id",
        uuid7_at(int(time.time() * 1000) - 3_600_000): "lastEventId is older than the catch-up window",
        uuid7_at(int(time.time() * 1000) - 1000): "lastEventId not found in the stream",
        seen.id: "too many missed events to replay",
    }
    for last_event_id, reason in cases.items():
        client = await connect_client(url, token=make_token(MERCHANT_A), last_event_id=last_event_id)
        summary = (await client.wait_for("catchup:complete"))[0]
        assert summary == {
            "scope": "connect",
            "lastEventId": last_event_id,
            "replayed": 0,
            "complete": False,
            "reason": reason,
        }
        assert client.events("payment:status-update") == []
        live = payment_event(invoice_id="live")
        await publish(redis, live)
        await client.wait_for_id(live.id)
        await client.close()


async def test_scanner_finds_a_last_event_beyond_this_readers_position(redis: aioredis.Redis) -> None:
    # The client was on a process whose reader was ahead of this one's: nothing to replay, and the
    # live events up to its last one must be skipped rather than sent again.
    events = [payment_event(invoice_id=f"ord_{n}") for n in range(3)]
    await publish(redis, *events)
    entry_ids = [entry_id for entry_id, _ in stream_entries(await redis.xrange(Stream.PAYMENT_EVENTS))]
    scanner = CatchUpScanner(redis, Stream.PAYMENT_EVENTS, window_s=600, clock_skew_ms=2000, max_events=100)

    def status_updates(emission: Emission) -> bool:
        return emission.name == "payment:status-update"

    result = await scanner.scan(
        last_event_id=events[2].id, merchant_id=MERCHANT_A, upto=entry_ids[0], wanted=status_updates
    )
    assert result.complete
    assert result.missed == []
    assert result.seen_through == entry_ids[2]

    result = await scanner.scan(
        last_event_id=events[0].id, merchant_id=MERCHANT_A, upto=entry_ids[2], wanted=status_updates
    )
    assert [missed.entry_id for missed in result.missed] == entry_ids[1:]
    assert [missed.emission.payload["eventId"] for missed in result.missed] == [events[1].id, events[2].id]


async def test_scanner_tolerates_clock_skew_between_producer_and_redis(redis: aioredis.Redis) -> None:
    # An event minted by a host whose clock runs 1.5 s ahead of Redis's: its stream id is earlier
    # than its event id's timestamp. The skew allowance still finds it.
    ahead = Event(
        id=uuid7_at(int(time.time() * 1000) + 1500),
        type=EventType.PAYMENT_PENDING,
        merchant_id=MERCHANT_A,
        invoice_id="skewed",
        data={"payment": {"id": "pay_1", "status": "pending", "amount": 1, "currency": "INR"}},
    )
    after = payment_event(invoice_id="after")
    await publish(redis, ahead, after)
    last_entry = stream_entries(await redis.xrevrange(Stream.PAYMENT_EVENTS, count=1))[0][0]
    scanner = CatchUpScanner(redis, Stream.PAYMENT_EVENTS, window_s=600, clock_skew_ms=2000, max_events=100)

    result = await scanner.scan(
        last_event_id=ahead.id,
        merchant_id=MERCHANT_A,
        upto=last_entry,
        wanted=lambda emission: emission.name == "payment:status-update",
    )

    assert result.complete
    assert [missed.emission.payload["eventId"] for missed in result.missed] == [after.id]


@dataclass
class LaggingNotifier:
    """A notifier whose reader hands nothing over until `held` is set: it lags the process its
    clients come from."""

    url: str
    held: asyncio.Event


@pytest.fixture
async def lagging_notifier(redis_url: str, clean_db: str) -> AsyncIterator[LaggingNotifier]:
    server = TestServer(create_app(notifier_settings(redis_url, clean_db)))
    await server.start_server()
    try:
        hub = server.app[HUB]
        held = asyncio.Event()
        hand_over = hub.tail._hand_over

        async def lagging_hand_over(entry_id: str, raw: bytes | None) -> None:
            await held.wait()
            await hand_over(entry_id, raw)

        hub.tail._hand_over = lagging_hand_over  # type: ignore[method-assign]  # this reader falls behind
        yield LaggingNotifier(str(server.make_url("")).rstrip("/"), held)
    finally:
        await server.close()


async def test_a_client_from_a_process_ahead_of_this_one_sees_nothing_twice(
    redis: aioredis.Redis, lagging_notifier: LaggingNotifier, connect_client: ClientFactory
) -> None:
    seen = [payment_event(invoice_id="a"), payment_event(invoice_id="b")]
    after = payment_event(invoice_id="c")
    await publish(redis, *seen, after)

    # The client saw a and b on a process whose reader was ahead of this one's.
    client = await connect_client(
        lagging_notifier.url, token=make_token(MERCHANT_A), last_event_id=seen[-1].id
    )
    summary = (await client.wait_for("catchup:complete"))[0]
    lagging_notifier.held.set()
    await client.wait_for_id(after.id)

    assert summary["complete"] is True
    assert summary["replayed"] == 0
    assert client.event_ids("payment:status-update") == [after.id]
    assert client.event_ids("payment:completed") == []


async def test_a_client_from_a_process_ahead_that_saw_half_an_event_gets_the_rest_live(
    redis: aioredis.Redis,
    lagging_notifier: LaggingNotifier,
    connect_client: ClientFactory,
    owners: OwnerRecorder,
) -> None:
    await owners(MERCHANT_A, "a")
    split = payment_event(EventType.PAYMENT_SUCCESS, invoice_id="a")
    after = payment_event(EventType.PAYMENT_FAILED, invoice_id="a")
    await publish(redis, split, after)

    # On a process ahead of this one, the client got the split event's status-update only.
    client = await connect_client(
        lagging_notifier.url,
        token=make_token(MERCHANT_A),
        last_event_id=split.id,
        last_event_name="payment:status-update",
    )
    assert await client.subscribe("a") == {"ok": True}
    summaries = await client.wait_for("catchup:complete", 2)
    lagging_notifier.held.set()
    await client.wait_for_id(after.id, name="payment:completed")

    assert [summary["replayed"] for summary in summaries] == [0, 0]
    assert client.event_ids("payment:status-update") == [after.id]
    assert client.event_ids("payment:completed") == [split.id, after.id]


class HeldScanner:
    """Wraps the hub's scanner so a test can hold a catch-up while live events arrive."""

    def __init__(self, inner: CatchUpScanner) -> None:
        self.inner = inner
        self.stream = inner.stream
        self.started = asyncio.Event()
        self.release = asyncio.Event()

    async def scan(self, **request: Any) -> CatchUpResult:
        self.started.set()
        await self.release.wait()
        return await self.inner.scan(**request)


async def test_live_events_wait_behind_the_replay(
    redis: aioredis.Redis, redis_url: str, clean_db: str, connect_client: ClientFactory
) -> None:
    server = TestServer(create_app(notifier_settings(redis_url, clean_db)))
    await server.start_server()
    url = str(server.make_url("")).rstrip("/")
    try:
        hub = server.app[HUB]
        held = HeldScanner(hub.scanners[0])
        hub.scanners = (held,)  # type: ignore[assignment]
        watcher = await connect_client(url, token=make_token(MERCHANT_A, sub="watcher"))
        seen, missed = payment_event(invoice_id="seen"), payment_event(invoice_id="missed")
        await publish(redis, seen, missed)
        await watcher.wait_for_id(missed.id)

        client = await connect_client(url, token=make_token(MERCHANT_A), last_event_id=seen.id)
        await held.started.wait()
        live = [payment_event(invoice_id=f"live_{n}") for n in range(3)]
        await publish(redis, *live)
        await watcher.wait_for_id(live[-1].id)  # handed over while the catch-up is held
        held.release.set()
        await client.wait_for_id(live[-1].id)

        assert [(item.name, item.data.get("invoiceId")) for item in client.received] == [
            ("payment:status-update", "missed"),
            ("catchup:complete", None),
            ("payment:status-update", "live_0"),
            ("payment:status-update", "live_1"),
            ("payment:status-update", "live_2"),
        ]
        await client.close()
        await watcher.close()
    finally:
        await server.close()


async def test_with_three_shards_a_reconnect_replays_what_every_shard_had_since_its_last_event(
    start_notifier: ServerFactory, connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    shards = StreamLayout(shards=3)
    url = await start_notifier(STREAM_SHARDS="3")
    watcher = await connect_client(url, token=make_token(MERCHANT_A, sub="watcher"))
    first = await connect_client(url, token=make_token(MERCHANT_A))
    seen = payment_event(EventType.PAYMENT_PENDING, invoice_id="ord_seen", payment_id="pay_seen")
    await publish(redis, seen, layout=shards)
    await first.wait_for_id(seen.id)
    await first.close()

    # Payments on every shard, one of another merchant's (never replayed to this one).
    missed = [
        payment_event(EventType.PAYMENT_PENDING, invoice_id=f"ord_{n}", payment_id=f"pay_{n:016d}")
        for n in range(9)
    ]
    foreign = payment_event(merchant_id=MERCHANT_B, invoice_id="ord_b", payment_id="pay_b")
    await publish(redis, *missed, foreign, layout=shards)
    assert {
        shards.key_for(Stream.PAYMENT_EVENTS, e.merchant_id, ordering_key(e), e.id) for e in missed
    } == set(shards.keys(Stream.PAYMENT_EVENTS))
    await watcher.wait_for_id(missed[-1].id)

    second = await connect_client(url, token=make_token(MERCHANT_A), last_event_id=seen.id)
    await second.wait_for("catchup:complete")
    [summary] = catch_up_summaries(second)
    assert summary["complete"] is True, summary
    replayed = second.event_ids("payment:status-update")
    assert set(replayed) >= {event.id for event in missed}
    assert foreign.id not in replayed
    live = payment_event(EventType.PAYMENT_SUCCESS, invoice_id="ord_live", payment_id="pay_live")
    await publish(redis, live, layout=shards)
    await second.wait_for_id(live.id)
