"""What must hold after a fault, checked against PostgreSQL, Redis, the merchant's receiver and the
frontend: nothing accepted is lost, nothing takes effect twice, and nothing is left in flight.

`wait_until_drained` polls (with a deadline) until no work is left anywhere: no unpublished outbox
row, no payment or provider event short of its final state, no delivery pending, no stream entry
unread or unacknowledged by any group, and every frontend has seen each payment of the invoices it
watches complete; twice in a row, with nothing written in between (the checks are separate
queries, so an event moving from a stream into the delivery log between the two would be seen in
neither). Then `verify_exactly_once` checks every accepted request end to end and lists
every violation at once, including the order in which each payment's first attempts reached the
merchant.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import asyncpg
import orjson
import redis.asyncio as aioredis
from load import SteadyLoad
from merchant_receiver import MerchantReceiver, ReceivingEndpoint
from platform_stack import PaymentWatcher

from paystream.events import STREAM_FIELD
from paystream.shards import logical_stream

# The events an API payment commits, and the one a captured Razorpay payment becomes.
API_PAYMENT_EVENTS = {"payment.created": 1, "payment.pending": 1, "payment.success": 1}
# The order in which a payment's first attempts must reach the merchant (README, Webhooks).
PAYMENT_LIFECYCLE = ("payment.created", "payment.pending", "payment.success")
RAZORPAY_PAYMENT_EVENTS = {"payment.success": 1}

PAYMENT_EVENTS_IN_OUTBOX = """
SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' -> 'payment' ->> 'id' AS payment_id,
       event_type, count(*) AS n
FROM outbox WHERE stream = 'payment:events'
GROUP BY 1, 2"""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def stream_backlog(redis: aioredis.Redis) -> dict[str, int]:
    """Per stream and group: entries not yet read plus entries read and not acknowledged; and the
    size of every dead-letter stream. Only non-zero figures are listed."""
    left: dict[str, int] = {}
    streams = sorted({_text(key) async for key in redis.scan_iter(_type="STREAM")})
    for stream in streams:
        if stream.endswith(":dlq"):
            if length := await redis.xlen(stream):
                left[f"{stream} (dead letters)"] = length
            continue
        info = await redis.xinfo_stream(stream)
        last_id = _text(info["last-generated-id"])
        for group in await redis.xinfo_groups(stream):
            name = _text(group["name"])
            if pending := int(group["pending"]):
                left[f"{stream}/{name} pending"] = pending
            if _stream_id(_text(group["last-delivered-id"])) < _stream_id(last_id):
                newer: Any = await redis.xrange(stream, min="(" + _text(group["last-delivered-id"]))
                if unread := len(newer):
                    left[f"{stream}/{name} unread"] = unread
    return left


def _stream_id(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


async def database_backlog(pool: asyncpg.Pool) -> dict[str, int]:
    row = await pool.fetchrow(
        """SELECT
             (SELECT count(*) FROM outbox_pending) AS unpublished_outbox_rows,
             (SELECT count(*) FROM payments WHERE status IN ('created', 'pending')) AS unsettled_payments,
             (SELECT count(*) FROM provider_events WHERE status = 'received') AS unprocessed_provider_events,
             (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS pending_deliveries,
             (SELECT count(*) FROM idempotency_keys WHERE state = 'in_progress') AS keys_in_progress"""
    )
    assert row is not None
    return {name: int(value) for name, value in row.items() if value}


# What has been written so far: any work moving between the stages a backlog check looks at adds
# to these.
WRITTEN_SO_FAR = """
SELECT (SELECT coalesce(max(id), 0) FROM outbox) AS outbox_rows,
       (SELECT count(*) FROM webhook_deliveries) AS deliveries,
       (SELECT coalesce(sum(attempts), 0) FROM webhook_deliveries) AS attempts"""


async def written_so_far(pool: asyncpg.Pool) -> tuple[int, ...]:
    row = await pool.fetchrow(WRITTEN_SO_FAR)
    assert row is not None
    return tuple(int(value) for value in row.values())


async def wait_until_drained(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    load: SteadyLoad,
    watcher: PaymentWatcher | None,
    *,
    timeout: float,
    watchers: Sequence[PaymentWatcher] = (),
) -> float:
    """Poll until nothing is left in flight; returns how long it took. Fails naming what is left.
    `watchers`: further frontends (each waited for on the invoices it watches)."""
    started = time.monotonic()
    deadline = started + timeout
    frontends = [*([watcher] if watcher is not None else []), *watchers]
    empty_after: tuple[int, ...] | None = None  # what was written when the last check found nothing
    while True:
        written = await written_so_far(pool)
        left: dict[str, Any] = {**await database_backlog(pool), **await stream_backlog(redis)}
        for number, frontend in enumerate(frontends):
            missing = _watched_payments(load, frontend) - set(frontend.completions())
            if missing:
                left[f"payments frontend {number} has not seen complete"] = len(missing)
                if time.monotonic() > deadline:
                    left[f"frontend {number} missing"] = sorted(missing)[:5]
                    left[f"frontend {number} catch-ups"] = frontend.catch_ups()
        if not left:
            if written == empty_after:
                return time.monotonic() - started
            empty_after = written  # nothing left, unless something was in transit: look again
        else:
            empty_after = None
        if time.monotonic() > deadline:
            raise AssertionError(f"not drained within {timeout}s; left: {left}; load: {load.summary()}")
        await _pause()


async def _pause() -> None:
    await asyncio.sleep(0.25)


async def verify_exactly_once(
    pool: asyncpg.Pool,
    redis: aioredis.Redis,
    load: SteadyLoad,
    receiver: MerchantReceiver | None,
    watcher: PaymentWatcher | None,
    *,
    endpoints: Sequence[ReceivingEndpoint] = (),
    watchers: Sequence[PaymentWatcher] = (),
) -> None:
    """Every accepted request reached its final state exactly once, and was published, delivered to
    the merchant and shown to the frontend. Fails listing every violation found.

    `receiver` gets every delivery (the merchant has one endpoint); with several endpoints, name
    each in `endpoints` instead: each gets the events its filter matches, under its own ids.
    `watchers`: further frontends, each checked on the invoices it watches."""
    problems: list[str] = []
    problems += _check_requests(load)
    problems += await _check_payments(pool, load)
    problems += await _check_provider_events(pool, load)
    outbox_ids = await _check_published(pool, redis)
    problems += outbox_ids[1]
    if receiver is not None:
        problems += await _check_deliveries(pool, receiver, outbox_ids[0])
    for endpoint in endpoints:
        meant = {event_id: kind for event_id, kind in outbox_ids[0].items() if endpoint.receives(kind)}
        problems += await _check_deliveries(pool, endpoint.receiver, meant, endpoint.endpoint_id)
    if watcher is not None:
        problems += _check_frontend(load, watcher)
    for number, frontend in enumerate(watchers):
        problems += [f"frontend {number}: {problem}" for problem in _check_frontend(load, frontend)]
    assert not problems, "\n".join([f"{len(problems)} violations ({load.summary()}):", *problems[:40]])


def _check_requests(load: SteadyLoad) -> list[str]:
    problems = []
    for request in load.not_accepted():
        answer = "no answer" if request.final_status is None else f"HTTP {request.final_status}"
        problems.append(
            f"{request.kind} {request.key} never accepted after {request.attempts} tries ({answer})"
        )
    if errors := load.status_counts()[500]:
        problems.append(f"the API answered 500 {errors} times")
    return problems


async def _check_payments(pool: asyncpg.Pool, load: SteadyLoad) -> list[str]:
    problems = []
    accepted = load.accepted_payments()
    rows = {row["id"]: row["status"] for row in await pool.fetch("SELECT id, status FROM payments")}
    for key, payment_id in accepted.items():
        if rows.get(payment_id) != "success":
            problems.append(f"payment {payment_id} ({key}) is {rows.get(payment_id)!r}, not success")
    if extra := set(rows) - set(accepted.values()):
        problems.append(f"{len(extra)} payments exist that no client was told about: {sorted(extra)[:5]}")
    stored_keys = await pool.fetch(
        "SELECT idempotency_key, state, response_body FROM idempotency_keys WHERE merchant_id = $1",
        "mer_test0000000001",
    )
    for row in stored_keys:
        if row["state"] != "completed":
            problems.append(f"idempotency key {row['idempotency_key']} left {row['state']}")
        elif orjson.loads(row["response_body"])["id"] != accepted.get(row["idempotency_key"]):
            problems.append(f"idempotency key {row['idempotency_key']} stored another payment than answered")
    events = await _outbox_payment_events(pool)
    for payment_id in accepted.values():
        if (found := events.pop(payment_id, {})) != API_PAYMENT_EVENTS:
            problems.append(f"payment {payment_id} has outbox events {found}")
    for payment_id in load.accepted_webhooks().values():
        if (found := events.pop(payment_id, {})) != RAZORPAY_PAYMENT_EVENTS:
            problems.append(f"Razorpay payment {payment_id} has outbox events {found}")
    for payment_id, found in events.items():
        problems.append(f"outbox events for a payment no client sent: {payment_id} {found}")
    return problems


async def _outbox_payment_events(pool: asyncpg.Pool) -> dict[str, dict[str, int]]:
    events: dict[str, dict[str, int]] = defaultdict(dict)
    for row in await pool.fetch(PAYMENT_EVENTS_IN_OUTBOX):
        events[row["payment_id"]][row["event_type"]] = int(row["n"])
    return events


async def _check_provider_events(pool: asyncpg.Pool, load: SteadyLoad) -> list[str]:
    problems = []
    accepted = load.accepted_webhooks()
    rows = {
        row["event_id"]: row["status"]
        for row in await pool.fetch(
            "SELECT event_id, status FROM provider_events WHERE provider = 'razorpay'"
        )
    }
    for event_id in accepted:
        if rows.get(event_id) != "processed":
            problems.append(f"provider event {event_id} is {rows.get(event_id)!r}, not processed")
    if extra := set(rows) - set(accepted):
        problems.append(f"{len(extra)} provider events stored that no answer accepted: {sorted(extra)[:5]}")
    # Each stored event was handled once: one audit row each (written in the handling transaction).
    handled = await pool.fetch(
        """SELECT event_id, count(*) AS n FROM provider_event_audit WHERE provider = 'razorpay'
           GROUP BY event_id HAVING count(*) <> 1"""
    )
    if handled:
        problems.append(f"provider events handled more than once: {[dict(row) for row in handled][:5]}")
    if unaudited := set(rows) - {
        row["event_id"]
        for row in await pool.fetch("SELECT event_id FROM provider_event_audit WHERE provider = 'razorpay'")
    }:
        problems.append(f"{len(unaudited)} stored provider events have no audit row: {sorted(unaudited)[:5]}")
    return problems


async def _check_published(pool: asyncpg.Pool, redis: aioredis.Redis) -> tuple[dict[str, str], list[str]]:
    """Every outbox row is published and its event is in its stream. Returns (event id -> type of
    every payment:events row, problems)."""
    problems = []
    rows = await pool.fetch(
        """SELECT event_id::text AS event_id, stream, event_type,
                  NOT EXISTS (SELECT FROM outbox_pending AS p WHERE p.id = outbox.id) AS published
           FROM outbox"""
    )
    by_stream: dict[str, set[str]] = defaultdict(set)
    for row in rows:
        if not row["published"]:
            problems.append(f"outbox row of event {row['event_id']} never published")
        by_stream[row["stream"]].add(row["event_id"])
    # A logical stream's entries, on whichever of its shard streams (`paystream.shards`) they are.
    shard_keys: dict[str, list[str]] = defaultdict(list)
    async for key in redis.scan_iter(_type="STREAM"):
        if not _text(key).endswith(":dlq"):
            shard_keys[logical_stream(_text(key))].append(_text(key))
    for stream, event_ids in by_stream.items():
        in_stream = set()
        for key in shard_keys[stream]:
            entries: Any = await redis.xrange(key)
            in_stream |= {orjson.loads(fields[STREAM_FIELD])["id"] for _, fields in entries}
        if missing := event_ids - in_stream:
            problems.append(f"{len(missing)} events of {stream} committed but not in the stream")
    payment_events = {row["event_id"]: row["event_type"] for row in rows if row["stream"] == "payment:events"}
    return payment_events, problems


async def _check_deliveries(
    pool: asyncpg.Pool,
    receiver: MerchantReceiver,
    payment_events: dict[str, str],
    endpoint_id: str | None = None,
) -> list[str]:
    """The delivery log (of one endpoint, or all of it) against what its receiver got: one delivery
    per event, each succeeded, received under the log's id, accepted once, signed and in order."""
    problems = []
    rows = await pool.fetch(DELIVERY_ROWS, endpoint_id)
    deliveries_per_event = Counter(row["event_id"] for row in rows)
    if repeated := [event_id for event_id, n in deliveries_per_event.items() if n > 1]:
        problems.append(f"{len(repeated)} events have more than one delivery: {sorted(repeated)[:5]}")
    by_event = {row["event_id"]: row for row in rows}
    if missing := set(payment_events) - set(by_event):
        problems.append(f"{len(missing)} events have no delivery to the merchant")
    if unexpected := set(by_event) - set(payment_events):
        problems.append(f"{len(unexpected)} deliveries of events not meant for it: {sorted(unexpected)[:5]}")
    for row in rows:
        if row["status"] != "success":
            problems.append(f"delivery {row['id']} is {row['status']} after {row['attempts']} attempts")
    received = receiver.received_ids()
    if undelivered := {row["id"] for row in rows} - received:
        problems.append(f"{len(undelivered)} deliveries logged that the receiver never got")
    if unknown := received - {row["id"] for row in rows}:
        problems.append(f"the receiver got {len(unknown)} webhook-ids the log does not hold")
    for event, ids in receiver.webhook_ids_by_event().items():
        if len(ids) > 1:
            problems.append(f"{event} reached the merchant under {len(ids)} webhook-ids")
    accepted = receiver.accepted_ids_by_event()
    misaccepted = [
        row["id"]
        for row in rows
        if row["payment_id"] is not None
        and row["id"] in received
        and accepted.get((row["event_type"], row["payment_id"])) != [row["id"]]
    ]
    if misaccepted:
        problems.append(f"{len(misaccepted)} events not accepted exactly once under their log's id")
    if bad := sum(1 for d in receiver.deliveries if not d.signatures_valid):
        problems.append(f"{bad} deliveries with a signature the merchant could not verify")
    if receiver.unreadable:
        problems.append(f"{receiver.unreadable} deliveries the merchant could not read")
    orders = first_attempt_orders(list(rows), receiver)
    for payment_id, order in orders.items():
        if order != sorted(order, key=PAYMENT_LIFECYCLE.index):
            problems.append(f"payment {payment_id}: first attempts reached the merchant as {order}")
    if endpoint_id is not None:
        return [f"endpoint {endpoint_id}: {problem}" for problem in problems]
    return problems


DELIVERY_ROWS = """
SELECT id, event_id::text AS event_id, event_type, order_key, status, attempts,
       convert_from(payload, 'UTF8')::jsonb -> 'data' -> 'payment' ->> 'id' AS payment_id
FROM webhook_deliveries WHERE $1::text IS NULL OR endpoint_id = $1"""
DELIVERY_ORDER_ROWS = "SELECT id, event_type, order_key, attempts FROM webhook_deliveries"


def first_attempt_orders(rows: list[asyncpg.Record], receiver: MerchantReceiver) -> dict[str, list[str]]:
    """payment id -> event types of its deliveries, in the order their first attempts reached the
    merchant. Only deliveries made in one attempt count: a first attempt that failed (the endpoint
    was down) never arrived, and its retry may come after later events' first attempts."""
    first_arrival: dict[str, int] = {}
    for position, delivery in enumerate(receiver.deliveries):
        first_arrival.setdefault(delivery.webhook_id, position)
    arrivals: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for row in rows:
        if row["attempts"] == 1 and row["id"] in first_arrival and row["event_type"] in PAYMENT_LIFECYCLE:
            arrivals[row["order_key"]].append((first_arrival[row["id"]], row["event_type"]))
    return {payment_id: [event for _, event in sorted(found)] for payment_id, found in arrivals.items()}


def _watched_payments(load: SteadyLoad, watcher: PaymentWatcher) -> set[str]:
    """The accepted payments of the invoices `watcher` subscribed to."""
    watched = set(watcher.invoices)
    return {payment for payment, invoice in load.invoice_of_payment().items() if invoice in watched}


def _check_frontend(load: SteadyLoad, watcher: PaymentWatcher) -> list[str]:
    problems = []
    seen = watcher.completions()
    expected = _watched_payments(load, watcher)
    if missing := expected - set(seen):
        problems.append(f"the frontend never saw {len(missing)} payments complete: {sorted(missing)[:5]}")
    if foreign := set(seen) - expected:
        problems.append(f"the frontend saw {len(foreign)} payments of invoices it does not watch complete")
    repeated = [event_id for event_id, n in Counter(watcher.completion_event_ids()).items() if n > 1]
    if repeated:
        problems.append(f"the frontend got {len(repeated)} payment:completed events twice")
    return problems
