"""Where an e2e event's time goes: the timestamps the stores keep for it, hop by hop.

For each timed invoice the driver gives the wall-clock time its webhook POST started and its
`payment:completed` arrived; PostgreSQL and Redis keep the rest:

- `provider_events.received_at`: the API's ingest transaction began (the writer took the batch);
- `provider_payments.created_at`: the processor's claiming transaction began;
- the `payment.success` event's entry id in `payment:events`: the relay's XADD (Redis's clock; the
  outbox row itself is never updated, so the relay's own start is not recorded).

So the hops are: API intake (parse, verify, wait for a writer); the ingest transaction, its commit,
the NOTIFY and the processor's claim (waiting for its previous batch); the processor's transaction,
its commit, the relay's wake-up (NOTIFY, linger), its claim and XADD; and the notifier's read and
emit. All clocks are this machine's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import orjson
import redis.asyncio as aioredis

from bench.payloads import MERCHANT_ID, razorpay_event_id, razorpay_order_id, razorpay_payment_id
from bench.stats import percentile
from paystream.db import Connection
from paystream.events import STREAM_FIELD, EventType, Stream

HOPS = (
    "api_intake",
    "ingest_commit_to_processor",
    "processor_to_payment_stream",
    "notifier_to_socket",
    "total",
)

TIMESTAMPS = """
WITH n AS MATERIALIZED (
    SELECT * FROM unnest($1::int[], $2::text[], $3::text[]) AS n(i, event_id, payment_id)
)
SELECT n.i,
       extract(epoch FROM e.received_at) AS ingest_at,
       extract(epoch FROM p.created_at) AS processor_at
FROM n
JOIN provider_events e ON e.provider = 'razorpay' AND e.merchant_id = $4 AND e.event_id = n.event_id
JOIN provider_payments p ON p.provider = 'razorpay' AND p.merchant_id = $4 AND p.payment_id = n.payment_id
"""


async def _success_xadds(redis: aioredis.Redis, invoices: dict[str, int], since_s: float) -> dict[int, float]:
    """When each invoice's `payment.success` was added to `payment:events` (its entry id's clock)."""
    found: dict[int, float] = {}
    start = f"{int(since_s * 1000)}-0"
    while len(found) < len(invoices):
        entries: Any = await redis.xrange(Stream.PAYMENT_EVENTS.value, min=start, max="+", count=2000)
        if not entries:
            break
        for entry_id, fields in entries:
            envelope = orjson.loads(fields[STREAM_FIELD])
            index = invoices.get(envelope.get("invoice_id"))
            if index is not None and envelope.get("type") == EventType.PAYMENT_SUCCESS.value:
                found[index] = int(entry_id.split(b"-")[0]) / 1000
        start = "(" + entries[-1][0].decode()
    return found


async def trace(
    conn: Connection, redis: aioredis.Redis, namespace: str, timed: Sequence[tuple[int, float, float]]
) -> dict[str, dict[str, float | None]]:
    """p50/p90/p99 in ms of each hop over the timed invoices (`(index, posted_at, arrived_at)`)."""
    wall = {i: (posted, arrived) for i, posted, arrived in timed}
    indexes = list(wall)
    rows = await conn.fetch(
        TIMESTAMPS,
        indexes,
        [razorpay_event_id(namespace, i) for i in indexes],
        [razorpay_payment_id(namespace, i) for i in indexes],
        MERCHANT_ID,
    )
    invoices = {razorpay_order_id(namespace, i): i for i in indexes}
    xadds = await _success_xadds(redis, invoices, min((posted for posted, _ in wall.values()), default=0.0))
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for row in rows:
        posted, arrived = wall[row["i"]]
        xadd_at = xadds.get(row["i"])
        if xadd_at is None:
            continue
        marks = [posted, float(row["ingest_at"]), float(row["processor_at"]), xadd_at, arrived]
        for hop, (start, end) in zip(HOPS, itertools.pairwise(marks), strict=False):
            hops[hop].append((end - start) * 1000)
        hops["total"].append((arrived - posted) * 1000)
    summary: dict[str, dict[str, float | None]] = {}
    for hop, values in hops.items():
        ordered = sorted(values)
        summary[hop] = {
            "p50_ms": _round(percentile(ordered, 0.5)),
            "p90_ms": _round(percentile(ordered, 0.9)),
            "p99_ms": _round(percentile(ordered, 0.99)),
        }
    summary["traced"] = {"events": float(len(hops["total"]))}
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
