"""Signed events the database cannot store (a NUL character, a number past `bigint`) end `rejected`,
through the processor's real claims on a real PostgreSQL: final at once, never counted as a failed
attempt (which would end them `failed`), alone, inside a batch of good events, and among urgent
ones; handling a rejected event again changes nothing. And no odd value in a field a handler reads
makes it crash instead of processing or rejecting the event.
"""

from __future__ import annotations

import copy
from typing import Any

import asyncpg
import orjson
import pytest
from provider_testkit import MERCHANT, event_status, store_event

from payment_processor import provider_events
from payment_processor.provider_events.store import EventKey
from paystream_devstack.testing import provider_payloads as payloads

# In the event's payload: the reason must say what was refused, never repeat what was sent.
MARKER = "do-not-echo"


def capture(payment_id: str, **entity: Any) -> dict[str, Any]:
    document = payloads.razorpay("payment.captured")
    document["payload"]["payment"]["entity"].update(id=payment_id, **entity)
    return document


async def queue(
    pool: asyncpg.Pool, body: str, event_id: str, *, provider: str = "razorpay", priority: int = 0
) -> EventKey:
    """What the API commits for a verified webhook: the row, its payload as sent."""
    event_type = orjson.loads(body).get("event", "payment") if provider == "razorpay" else "payment"
    key = await store_event(
        pool,
        provider=provider,
        event_id=event_id,
        event_type=event_type,
        payload=body,
        provider_account_id="pacc_test",
    )
    await pool.execute("UPDATE provider_events SET priority = $2 WHERE event_id = $1", event_id, priority)
    return key


def with_nul(document: dict[str, Any]) -> str:
    """The JSON text of `document` with a NUL (`\\u0000`) in the payment's description, as a
    provider would send it (valid JSON, but neither `text` nor `jsonb` can hold it)."""
    document["payload"]["payment"]["entity"]["description"] = f"{MARKER}\x00{MARKER}"
    body = orjson.dumps(document).decode()
    assert "\\u0000" in body
    return body


async def assert_none_waiting_or_counted_as_failures(pool: asyncpg.Pool) -> None:
    rows = await pool.fetch(
        "SELECT event_id, status, attempts FROM provider_events WHERE status IN ('received', 'failed') OR attempts > 0"
    )
    assert [dict(row) for row in rows] == []


async def assert_rejected_and_kept_nothing(pool: asyncpg.Pool, event_id: str, says: str) -> None:
    status, reason = await event_status(pool, event_id)
    assert status == "rejected", (event_id, reason)
    assert reason is not None and says in reason, reason
    assert MARKER not in reason
    audit = await pool.fetch(
        "SELECT outcome, changes, emitted FROM provider_event_audit WHERE event_id = $1", event_id
    )
    assert [(row["outcome"], row["changes"], row["emitted"]) for row in audit] == [("rejected", [], [])]


BIG = "10000000000000000000000000"  # 10^25


@pytest.mark.parametrize(
    ("provider", "body", "says"),
    [
        ("razorpay", with_nul(capture("pay_nul")), "NUL"),
        # 10^25 arrives as a float from the JSON parser; 2^63 as an integer just past `bigint`.
        ("razorpay", orjson.dumps(capture("pay_huge")).decode().replace("50000", BIG, 1), "out of range"),
        ("razorpay", orjson.dumps(capture("pay_2_63", amount=2**63)).decode(), "out of range"),
        ("payable", orjson.dumps(payloads.payable("success", payableAmount=BIG)).decode(), "out of range"),
        (
            "payable",
            orjson.dumps(payloads.payable("success", cardHolderName=f"{MARKER}\x00")).decode(),
            "NUL",
        ),
    ],
    ids=["razorpay-nul", "razorpay-10^25", "razorpay-2^63", "payable-10^25", "payable-nul"],
)
async def test_an_unstorable_event_alone_ends_rejected_and_is_never_a_failure(
    pool: asyncpg.Pool, provider: str, body: str, says: str
) -> None:
    key = await queue(pool, body, "evt_unstorable", provider=provider)
    assert await provider_events.handle_waiting(pool) == 1
    await assert_rejected_and_kept_nothing(pool, "evt_unstorable", says)
    await assert_none_waiting_or_counted_as_failures(pool)
    for table in ("provider_payments", "invoice_owners", "saved_card_tokens", "outbox"):
        assert await pool.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    # Handled again (as a second replica would try): nothing changes.
    await provider_events.handle_one(pool, key)
    assert await provider_events.handle_waiting(pool) == 0
    await assert_rejected_and_kept_nothing(pool, "evt_unstorable", says)
    await assert_none_waiting_or_counted_as_failures(pool)


async def test_unstorable_events_in_a_batch_are_rejected_and_the_good_ones_processed(
    pool: asyncpg.Pool,
) -> None:
    huge = orjson.dumps(capture("pay_huge")).decode().replace("50000", BIG, 1)
    bodies = {
        "evt_good_1": orjson.dumps(capture("pay_good_1")).decode(),
        "evt_nul": with_nul(capture("pay_nul")),
        "evt_good_2": orjson.dumps(capture("pay_good_2")).decode(),
        "evt_huge": huge,
        "evt_2_63": orjson.dumps(capture("pay_2_63", amount=2**63)).decode(),
        "evt_good_3": orjson.dumps(capture("pay_good_3")).decode(),
    }
    for event_id, body in bodies.items():
        await queue(pool, body, event_id)
    assert await provider_events.handle_waiting(pool) == len(bodies)
    for event_id in ("evt_good_1", "evt_good_2", "evt_good_3"):
        assert await event_status(pool, event_id) == ("processed", None)
    await assert_rejected_and_kept_nothing(pool, "evt_nul", "NUL")
    await assert_rejected_and_kept_nothing(pool, "evt_huge", "out of range")
    await assert_rejected_and_kept_nothing(pool, "evt_2_63", "out of range")
    await assert_none_waiting_or_counted_as_failures(pool)
    payments = await pool.fetch("SELECT payment_id FROM provider_payments ORDER BY payment_id")
    assert [row["payment_id"] for row in payments] == ["pay_good_1", "pay_good_2", "pay_good_3"]
    events = await pool.fetch("SELECT payload FROM outbox WHERE stream = 'payment:events'")
    assert len(events) == 3


async def test_an_unstorable_urgent_event_ends_rejected(pool: asyncpg.Pool) -> None:
    document = payloads.razorpay("payment.dispute.created")
    document["payload"]["dispute"]["entity"]["reason_description"] = f"{MARKER}\x00"
    await queue(pool, orjson.dumps(document).decode(), "evt_dispute_nul", priority=1)
    good = payloads.razorpay("payment.dispute.won")
    await queue(pool, orjson.dumps(good).decode(), "evt_dispute_ok", priority=1)
    assert await provider_events.handle_waiting(pool) == 2
    await assert_rejected_and_kept_nothing(pool, "evt_dispute_nul", "NUL")
    assert await event_status(pool, "evt_dispute_ok") == ("processed", None)
    await assert_none_waiting_or_counted_as_failures(pool)


# Values a field may hold that no handler expects there.
ODD_VALUES: dict[str, Any] = {
    "list": [1, 2],  # not a string, and unhashable
    "nul": f"{MARKER}\x00",
    "past_bigint": 2**63,
    "huge": 1e25,  # a JSON integer too large for 64 bits, as the parser returns it
    "long": "x" * 3000,  # past what PostgreSQL can index
}
# One event type per handler.
HANDLED_TYPES = [
    "payment.captured",
    "payment.dispute.won",
    "payment.downtime.started",
    "order.paid",
    "order.notification.delivered",
    "invoice.paid",
    "payment_link.paid",
    "fund_account.validation.completed",
    "refund.speed_changed",
    "account.instantly_activated",
]


def _field_paths(document: dict[str, Any], provider: str) -> list[tuple[str, ...]]:
    if provider == "payable":
        return [(key,) for key in document] + [("token", key) for key in document.get("token", {})]
    paths: list[tuple[str, ...]] = [("created_at",), ("account_id",), ("payload",)]
    for name, wrapper in document["payload"].items():
        for key in wrapper["entity"]:
            # The payment other events carry is read as in `payment.captured`, but for these.
            if name == "payment" and document["event"] != "payment.captured" and key not in EMBEDDED:
                continue
            paths.append(("payload", name, "entity", key))
    return paths


EMBEDDED = {"id", "status", "amount"}


def _odd_documents() -> list[tuple[str, str, dict[str, Any]]]:
    cases = []
    documents = [("razorpay", event_type, payloads.razorpay(event_type)) for event_type in HANDLED_TYPES]
    documents.append(("payable", "tokenization", payloads.payable("tokenization")))
    for provider, name, document in documents:
        for path in _field_paths(document, provider):
            for value_name, value in ODD_VALUES.items():
                changed = copy.deepcopy(document)
                parent = changed
                for key in path[:-1]:
                    parent = parent[key]
                parent[path[-1]] = value
                cases.append((provider, f"{name}:{'.'.join(path)}={value_name}", changed))
    return cases


@pytest.mark.slow
async def test_no_odd_field_value_crashes_a_handler(pool: asyncpg.Pool) -> None:
    """Every field a payload carries, given each odd value in turn: the event ends `processed` or
    `rejected` in its own transaction; nothing raises (a raise would count as a failed attempt,
    and end the event `failed` in the end)."""
    cases = _odd_documents()
    rows = []
    for n, (provider, _case, document) in enumerate(cases):
        event_type = document.get("event", "payment") if provider == "razorpay" else "payment"
        rows.append((provider, f"evt_odd_{n:05d}", event_type, MERCHANT, orjson.dumps(document).decode()))
    await pool.executemany(
        "INSERT INTO provider_events (provider, event_id, type, merchant_id, payload) VALUES ($1, $2, $3, $4, $5)",
        rows,
    )
    for provider, event_id, *_rest in rows:
        await provider_events.handle_one(pool, (provider, MERCHANT, event_id))
    crashed = await pool.fetch("SELECT event_id, last_error FROM provider_events WHERE attempts > 0")
    case_of = {row[1]: case for (_provider, case, _document), row in zip(cases, rows, strict=True)}
    assert [f"{case_of[row['event_id']]}: {row['last_error']}" for row in crashed] == []
    outcomes = await pool.fetch("SELECT status, count(*) FROM provider_events GROUP BY status")
    assert set(dict(outcomes)) <= {"processed", "rejected"}
    assert sum(count for _status, count in outcomes) == len(cases)
    echoed = await pool.fetchval("SELECT count(*) FROM provider_events WHERE reason LIKE $1", f"%{MARKER}%")
    assert echoed == 0
