"""Real notifier processes: fan-out across two of them, a SIGKILL whose clients resume on the
other with lastEventId, and a SIGTERM that drains."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import redis.asyncio as aioredis

from paystream.events import Event, EventType
from paystream_devstack.embedded import free_port
from paystream_devstack.testing import ServiceProcess, eventually
from paystream_devstack.testing.notifier_client import (
    MERCHANT_A,
    MERCHANT_B,
    Client,
    ClientFactory,
    OwnerRecorder,
    make_token,
    payment_event,
    publish,
)

pytestmark = pytest.mark.slow


@dataclass
class Notifier:
    process: ServiceProcess
    url: str


@pytest.fixture
def two_notifiers(
    spawn_service: Callable[..., ServiceProcess], service_env: dict[str, str]
) -> tuple[Notifier, Notifier]:
    ports = (service_env["NOTIFIER_PORT"], str(free_port()))
    return (
        Notifier(
            spawn_service("notifier", service_env, NOTIFIER_PORT=ports[0]), f"http://127.0.0.1:{ports[0]}"
        ),
        Notifier(
            spawn_service("notifier", service_env, NOTIFIER_PORT=ports[1]), f"http://127.0.0.1:{ports[1]}"
        ),
    )


def ids(events: list[Event]) -> list[str]:
    return [event.id for event in events]


async def test_each_process_delivers_to_its_own_clients_exactly_once(
    two_notifiers: tuple[Notifier, Notifier],
    connect_client: ClientFactory,
    owners: OwnerRecorder,
    redis: aioredis.Redis,
) -> None:
    first, second = two_notifiers
    await owners(MERCHANT_A, "ord_1")
    await owners(MERCHANT_B, "ord_1")
    a_on_first = await connect_client(first.url, token=make_token(MERCHANT_A))
    a_on_second = await connect_client(second.url, token=make_token(MERCHANT_A))
    salon_on_second = await connect_client(second.url, token=make_token(MERCHANT_A, salon_id="SALON1"))
    b_on_second = await connect_client(second.url, token=make_token(MERCHANT_B))
    for client in (a_on_first, a_on_second, b_on_second):
        assert await client.subscribe("ord_1") == {"ok": True}
    # ord_1 is no salon's invoice: a salon-scoped socket may not watch it.
    assert await salon_on_second.subscribe("ord_1") == {"ok": False, "error": "invoice not found"}

    events = []
    for n in range(60):
        kind = EventType.PAYMENT_SUCCESS if n % 10 == 9 else EventType.PAYMENT_PENDING
        if n % 3 == 0:
            events.append(payment_event(kind, salon_id="SALON1", invoice_id="ord_1"))
        elif n % 3 == 1:
            events.append(payment_event(kind, invoice_id="ord_1"))
        else:
            events.append(payment_event(kind, merchant_id=MERCHANT_B, invoice_id="ord_1"))
    await publish(redis, *events)
    of_a = [event for event in events if event.merchant_id == MERCHANT_A]
    of_salon = [event for event in of_a if event.salon_id == "SALON1"]
    of_b = [event for event in events if event.merchant_id == MERCHANT_B]
    await asyncio.gather(
        a_on_first.wait_for_id(of_a[-1].id),
        a_on_second.wait_for_id(of_a[-1].id),
        salon_on_second.wait_for_id(of_salon[-1].id),
        b_on_second.wait_for_id(of_b[-1].id),
    )

    def finals(of: list[Event]) -> list[str]:
        return [event.id for event in of if event.type is EventType.PAYMENT_SUCCESS]

    for client, expected in ((a_on_first, of_a), (a_on_second, of_a), (b_on_second, of_b)):
        assert client.event_ids("payment:status-update") == ids(expected)
        assert client.event_ids("payment:completed") == finals(expected)
    assert salon_on_second.event_ids("payment:status-update") == ids(of_salon)
    assert salon_on_second.events("payment:completed") == []


async def test_clients_of_a_killed_notifier_resume_on_the_other_without_loss_or_repeat(
    two_notifiers: tuple[Notifier, Notifier],
    connect_client: ClientFactory,
    owners: OwnerRecorder,
    redis: aioredis.Redis,
) -> None:
    doomed, survivor = two_notifiers
    invoices = [f"ord_{n}" for n in range(4)]
    for invoice in invoices:
        await owners(MERCHANT_A, invoice)
    merchant_client = await connect_client(doomed.url, token=make_token(MERCHANT_A))
    salon_client = await connect_client(doomed.url, token=make_token(MERCHANT_A, salon_id="SALON1"))
    control = await connect_client(survivor.url, token=make_token(MERCHANT_A))
    for client in (merchant_client, control):
        for invoice in invoices:
            assert await client.subscribe(invoice) == {"ok": True}

    published: list[Event] = []

    async def produce() -> None:
        for batch in range(100):
            invoice = invoices[batch % len(invoices)]
            events = [
                payment_event(EventType.PAYMENT_PENDING, invoice_id=invoice),
                payment_event(EventType.PAYMENT_SUCCESS, invoice_id=invoice, salon_id="SALON1"),
                payment_event(EventType.PAYMENT_PENDING, invoice_id=f"other_{batch}", salon_id="SALON2"),
                payment_event(EventType.PAYMENT_FAILED, merchant_id=MERCHANT_B, invoice_id=invoice),
            ]
            await publish(redis, *events)
            published.extend(events)
            await asyncio.sleep(0.01)  # a steady 400 events/s; pacing, not waiting for a result

    producer = asyncio.create_task(produce())
    await merchant_client.wait_for("payment:status-update", 60)
    doomed.process.kill()
    await eventually(lambda: merchant_client.disconnects == 1 and salon_client.disconnects == 1)

    # The load balancer sends them to the survivor; each names the last packet it saw (the kill
    # may have come between a success's status-update and its completed).
    resumed_merchant = await connect_client(
        survivor.url,
        token=make_token(MERCHANT_A),
        last_event_id=merchant_client.last_event_id(),
        last_event_name=merchant_client.last_event_name(),
    )
    for invoice in invoices:
        assert await resumed_merchant.subscribe(invoice) == {"ok": True}
    resumed_salon = await connect_client(
        survivor.url,
        token=make_token(MERCHANT_A, salon_id="SALON1"),
        last_event_id=salon_client.last_event_id(),
        last_event_name=salon_client.last_event_name(),
    )
    await producer

    of_a = [event for event in published if event.merchant_id == MERCHANT_A]
    of_salon = [event for event in of_a if event.salon_id == "SALON1"]
    finals = [
        event.id for event in of_a if event.type in (EventType.PAYMENT_SUCCESS, EventType.PAYMENT_FAILED)
    ]
    await asyncio.gather(
        control.wait_for_id(of_a[-1].id, timeout=20),
        resumed_merchant.wait_for_id(of_a[-1].id, timeout=20),
        resumed_salon.wait_for_id(of_salon[-1].id, timeout=20),
    )
    await resumed_merchant.wait_for("catchup:complete", 1 + len(invoices))

    def across(before: Client, after: Client, name: str) -> list[str]:
        return before.event_ids(name) + after.event_ids(name)

    assert control.event_ids("payment:status-update") == ids(of_a)
    assert across(merchant_client, resumed_merchant, "payment:status-update") == ids(of_a)
    assert across(salon_client, resumed_salon, "payment:status-update") == ids(of_salon)
    await control.wait_for("payment:completed", len(finals))
    completed = across(merchant_client, resumed_merchant, "payment:completed")
    assert len(completed) == len(set(completed))
    assert sorted(completed) == sorted(finals)
    assert all(summary["complete"] for summary in resumed_merchant.events("catchup:complete"))
    assert merchant_client.event_ids("payment:status-update"), "the kill came after some deliveries"
    assert resumed_merchant.event_ids("payment:status-update"), "and before the last ones"


async def test_sigterm_drains_sockets_and_exits(
    two_notifiers: tuple[Notifier, Notifier], connect_client: ClientFactory, redis: aioredis.Redis
) -> None:
    leaving, staying = two_notifiers
    client = await connect_client(leaving.url, token=make_token(MERCHANT_A))
    seen = payment_event()
    await publish(redis, seen)
    await client.wait_for_id(seen.id)

    # In a thread: the clients live on this event loop and must answer the server's goodbye.
    started = time.monotonic()
    assert await asyncio.to_thread(leaving.process.terminate, 15) == 0
    assert time.monotonic() - started < 5, leaving.process.log_text()
    await eventually(lambda: client.disconnects == 1)
    missed = payment_event(invoice_id="after_drain")
    await publish(redis, missed)
    resumed = await connect_client(
        staying.url, token=make_token(MERCHANT_A), last_event_id=client.last_event_id()
    )

    await resumed.wait_for_id(missed.id)
    assert resumed.event_ids("payment:status-update") == [missed.id]
    assert "hub.draining" in leaving.process.log_text()
