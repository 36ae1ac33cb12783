"""Two processes of every service (API, payment processor, webhook dispatcher, notifier) on one Redis
and one PostgreSQL, coordinated by nothing else, under a steady load spread over both APIs as a load
balancer would, with frontends on both notifiers and one merchant endpoint.

First every replica takes part: both APIs accept requests, both processors and both dispatchers
handle events (their own `/metrics` say so), and a frontend on either notifier sees the payments
made through either API complete. Then one API, one processor and one dispatcher (the relay's
leader among them) are SIGKILLed while each holds work: the load goes on through the surviving
API, and the survivors take over the dead consumers' pending entries (XAUTOCLAIM), the dead
dispatcher's leased deliveries (the lease runs out) and the relay's leadership. Afterwards the fault
suite's invariants hold: nothing accepted is lost, nothing takes effect twice, each payment's first
attempts reached the merchant in order, every frontend saw each completion once.

So that the takeover checked is never of nothing, the victims die holding work: for a moment the
merchant answers no delivery (attempts, and their leases, stay in the dispatchers' hands) and the
test holds a lock on `inbox` (every consumer's handler waits at its claim, its entries read and not
acknowledged); once Redis shows a `payment.created` pending in both victims' consumers and the
victim dispatcher has attempts in flight, they are SIGKILLed, and the lock and the merchant let go.
The moment lasts well under the handler and HTTP timeouts.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
import pytest
import redis.asyncio as aioredis
from chaos_scenario import INVOICES
from invariants import verify_exactly_once, wait_until_drained
from load import SteadyLoad
from merchant_receiver import MerchantReceiver
from platform_stack import (
    API,
    DISPATCHER,
    MERCHANT_ID,
    NOTIFIER,
    PROCESSOR,
    WEBHOOK_SECRET,
    PaymentWatcher,
    Spawn,
)
from replica_set import Replica, ReplicaSet, start_replicas

from paystream.events import STREAM_FIELD, ConsumerGroup, Event, EventType, Stream
from paystream.invoices import record_invoice_owner
from paystream_devstack.testing import eventually

pytestmark = pytest.mark.chaos

GROUPS = {PROCESSOR: ConsumerGroup.PAYMENT_PROCESSOR, DISPATCHER: ConsumerGroup.WEBHOOK_DISPATCHER}
# Each notifier serves two frontends; each invoice is watched once on either notifier.
WATCHED = {0: (INVOICES[0:2], INVOICES[2:4]), 1: (INVOICES[0::2], INVOICES[1::2])}
# How long the test may hold the inbox and the merchant's answers: well under the handler timeout
# and the webhook HTTP timeout of FAST_RECOVERY (3 s, 2 s).
HOLD_S = 1.0


@dataclass
class Replicated:
    replicas: ReplicaSet
    load: SteadyLoad
    receiver: MerchantReceiver
    watchers: dict[int, list[PaymentWatcher]] = field(default_factory=dict)

    def all_watchers(self) -> list[PaymentWatcher]:
        return [watcher for on_notifier in self.watchers.values() for watcher in on_notifier]


@pytest.fixture
async def replicated(
    spawn_service: Spawn, service_env: dict[str, str], db_pool: asyncpg.Pool, redis: aioredis.Redis
) -> AsyncIterator[Replicated]:
    """The replicas, the merchant's endpoint, the frontends and the load (not started). Requests
    `redis` (which empties the test's Redis) before the services start."""
    async with db_pool.acquire() as conn, conn.transaction():
        for invoice_id in INVOICES:
            await record_invoice_owner(conn, MERCHANT_ID, invoice_id)
    replicas = await start_replicas(spawn_service, service_env)
    receiver = await MerchantReceiver(WEBHOOK_SECRET).start()
    first_api, *other_apis = [replica.url for replica in replicas.of(API)]
    load = SteadyLoad(
        first_api,
        replicas.env["RAZORPAY_WEBHOOK_SECRET"],
        INVOICES,
        tag="replicas",
        other_api_urls=other_apis,
    )
    scenario = Replicated(replicas, load, receiver)
    try:
        config = await replicas.stack().configure_webhook(receiver.url)
        assert config["secret"] == WEBHOOK_SECRET, config
        for notifier in replicas.of(NOTIFIER):
            scenario.watchers[notifier.index] = []
            for invoices in WATCHED[notifier.index]:
                watcher = PaymentWatcher(notifier.url, invoices)
                scenario.watchers[notifier.index].append(watcher)
                await watcher.connect()
        yield scenario
    finally:
        await load.close()
        for watcher in scenario.all_watchers():
            await watcher.close()
        await receiver.stop()


async def test_two_replicas_of_every_service_share_the_work_and_survive_losing_one_of_each(
    replicated: Replicated, db_pool: asyncpg.Pool, redis: aioredis.Redis
) -> None:
    replicas, load, receiver = replicated.replicas, replicated.load, replicated.receiver
    started = time.monotonic()
    await load.start()
    await load.until_accepted(40)

    # -- every replica takes part ------------------------------------------------------------------
    work = await eventually(
        lambda: work_of_each_replica(replicas), timeout=30, interval=0.5, message="every replica worked"
    )
    accepted_by = {api.url: 0 for api in replicas.of(API)}
    for request in load.requests:
        if request.accepted_by is not None:
            accepted_by[request.accepted_by] += 1
    assert all(accepted_by.values()), accepted_by

    # A frontend on either notifier sees payments made through either API complete.
    def each_frontend_saw_both_apis() -> bool:
        apis = load.api_of_payment()
        return all(
            {apis.get(payment) for payment in watcher.completions()} >= set(load.api_urls)
            for watcher in replicated.all_watchers()
        )

    await eventually(each_frontend_saw_both_apis, timeout=20, message="frontends saw both APIs' payments")

    # -- one API, one processor and one dispatcher die while holding work ---------------------------
    leader = await eventually(lambda: replicas.relay_leader(db_pool), timeout=10, message="a relay leads")
    victims = {
        service: leader if leader.service == service else replicas.of(service)[0]
        for service in (API, PROCESSOR, DISPATCHER)
    }
    leased_at_kill = await kill_holding_work(victims, receiver, db_pool, redis)
    killed_at = time.monotonic()
    survivors = {service: next(r for r in replicas.of(service) if r.alive) for service in victims}
    # What the dead consumers held when they died (Redis keeps a dead consumer's pending entries).
    held = {
        service: await victims[service].pending_entries(redis, Stream.PAYMENT_EVENTS, group)
        for service, group in GROUPS.items()
    }
    assert all(held.values()), held

    await load.until_accepted(40, timeout=30)  # the survivors carry the load
    new_leader = await eventually(
        lambda: replicas.relay_leader(db_pool), timeout=15, message="a surviving relay leads"
    )
    assert new_leader.alive, new_leader.name

    # While the load goes on, the survivors take over what the dead held: every entry its consumers
    # had read (XAUTOCLAIM counts them in `paystream_events_reclaimed_total`), and its deliveries,
    # attempted again once their lease ran out.
    figures: dict[str, float] = {}

    async def taken_over() -> dict[str, float] | None:
        for service, group in GROUPS.items():
            figures[f"{service} reclaimed"] = await survivors[service].metric(
                "paystream_events_reclaimed_total", group=group, stream=Stream.PAYMENT_EVENTS
            )
            left = await victims[service].pending_entries(redis, Stream.PAYMENT_EVENTS, group)
            figures[f"{service} left with the dead"] = len(left)
        figures["leases"] = len(await attempted_after_lease(db_pool, leased_at_kill))
        done = figures["leases"] > 0 and all(
            figures[f"{service} left with the dead"] == 0
            and figures[f"{service} reclaimed"] >= len(held[service])
            for service in GROUPS
        )
        return dict(figures) if done else None

    takeover = await eventually(
        taken_over,
        timeout=40,
        interval=0.5,
        message=f"takeover of { ({s: len(ids) for s, ids in held.items()}) } entries (figures {figures})",
    )
    await load.run_for(1.0)

    await load.settle(timeout=load.give_up_after_s + 15)
    drained_in = await wait_until_drained(
        db_pool, redis, load, None, timeout=60, watchers=replicated.all_watchers()
    )
    await verify_exactly_once(db_pool, redis, load, receiver, None, watchers=replicated.all_watchers())

    # The dead API's unanswered requests were answered by the survivor (the same key or event id).
    dead_api, live_api = victims[API].url, survivors[API].url
    retried = [r for r in load.requests if dead_api in r.no_answer_from and r.accepted_by == live_api]
    assert retried, "requests the dead API left unanswered were sent again to the survivor"

    print(
        f"\nreplicas: work before the kill {work}; accepted per API {accepted_by}; relay leader "
        f"{leader.name} -> {new_leader.name}; held at the kill "
        f"{ {service: len(ids) for service, ids in held.items()} }, {len(leased_at_kill)} leases; "
        f"taken over {takeover}; {len(set(receiver.redelivered()) & set(leased_at_kill))} webhook-ids "
        f"the merchant got twice; {len(retried)} requests retried "
        f"on the surviving API; drained {drained_in:.1f}s after the load, "
        f"{time.monotonic() - killed_at:.1f}s after the kill, {time.monotonic() - started:.1f}s in all; "
        f"{load.summary()}"
    )


async def work_of_each_replica(replicas: ReplicaSet) -> dict[str, float] | None:
    """Events each processor and dispatcher handled, and attempts each dispatcher made; None until
    every figure is above zero."""
    figures: dict[str, float] = {}
    for service, group in GROUPS.items():
        for replica in replicas.of(service):
            figures[f"{replica.name} handled"] = await replica.metric(
                "paystream_events_handled_total", group=group
            )
    for replica in replicas.of(PROCESSOR):
        figures[f"{replica.name} settled"] = await replica.metric("paystream_settlements_total")
    for replica in replicas.of(DISPATCHER):
        figures[f"{replica.name} delivered"] = await replica.metric(
            "paystream_webhook_delivery_attempts_total", outcome="success"
        )
    return figures if all(figures.values()) else None


async def kill_holding_work(
    victims: dict[str, Replica], receiver: MerchantReceiver, pool: asyncpg.Pool, redis: aioredis.Redis
) -> dict[str, datetime]:
    """SIGKILL the victims at a moment when each worker's consumers hold entries read and not
    acknowledged and the dispatcher has attempts in flight. Returns the deliveries leased then (with
    their leases' ends). Tried again if that moment does not come soon enough: the hold must end well
    before a handler's or an attempt's timeout."""
    dispatcher = victims[DISPATCHER]
    for _ in range(5):
        receiver.hold_answers()
        blocker = await pool.acquire()
        try:
            async with blocker.transaction():
                await blocker.execute("LOCK TABLE inbox IN EXCLUSIVE MODE")
                if await holding_work(victims, dispatcher, redis):
                    leased = await leased_deliveries(pool)
                    for victim in victims.values():
                        victim.process.kill()
                    return leased
        finally:
            await pool.release(blocker)
            receiver.answer()
        await eventually(lambda: in_flight_at_least(dispatcher, 1), timeout=10, message="attempts flow")
    raise AssertionError("the victims never held work at once")


async def holding_work(
    victims: dict[str, Replica], dispatcher: Replica, redis: aioredis.Redis, within_s: float = HOLD_S
) -> bool:
    """Whether, within `within_s`, each worker victim's consumers come to hold entries and the
    dispatcher has attempts in flight."""

    async def probe() -> bool:
        for service, group in GROUPS.items():
            if not await waiting_at_the_inbox(victims[service], group, redis):
                return False
        return await in_flight_at_least(dispatcher, 1)

    try:
        return await eventually(probe, timeout=within_s, interval=0.02)
    except AssertionError:
        return False


async def waiting_at_the_inbox(victim: Replica, group: str, redis: aioredis.Redis) -> bool:
    """Whether the victim's consumers hold a `payment.created` (both groups claim it in the inbox,
    so its handler waits for the test's lock: the entry stays pending until the victim dies; an
    event that a handler does nothing with is acknowledged at once)."""
    for entry_id in await victim.pending_entries(redis, Stream.PAYMENT_EVENTS, group):
        for _, fields in await redis.xrange(Stream.PAYMENT_EVENTS, min=entry_id, max=entry_id):
            if Event.decode(fields[STREAM_FIELD]).type is EventType.PAYMENT_CREATED:
                return True
    return False


async def in_flight_at_least(dispatcher: Replica, count: int) -> bool:
    return await dispatcher.metric("paystream_webhook_in_flight") >= count


async def leased_deliveries(pool: asyncpg.Pool) -> dict[str, datetime]:
    """Deliveries whose attempt is in someone's hands now, and when each one's lease ends."""
    rows = await pool.fetch(
        """SELECT id, due_at FROM webhook_deliveries
           WHERE status = 'pending' AND lease_token IS NOT NULL AND due_at > now()"""
    )
    return {row["id"]: row["due_at"] for row in rows}


async def attempted_after_lease(pool: asyncpg.Pool, leased: dict[str, datetime]) -> set[str]:
    """Those of `leased` whose last attempt started once the lease had run out: an attempt made by
    another dispatcher than the lease's holder (a live holder records its outcome well before)."""
    rows = await pool.fetch(
        """SELECT d.id FROM webhook_deliveries AS d
           JOIN unnest($1::text[], $2::timestamptz[]) AS l(id, lease_end) USING (id)
           WHERE d.last_attempt_at >= l.lease_end""",
        list(leased),
        list(leased.values()),
    )
    return {row["id"] for row in rows}
