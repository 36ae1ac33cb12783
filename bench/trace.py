"""Where an e2e event's time goes: the timestamps the stores keep for it, hop by hop.

For each timed invoice the driver gives the wall-clock time its webhook POST started and its
`payment:completed` arrived; PostgreSQL and Redis keep the rest:

- `provider_events.received_at`: the API's ingest transaction began (the writer took the batch);
- `provider_payments.created_at`: the processor's claiming transaction began;
- the `payment.success` outbox row's `published_at`: the relay's transaction that published it began;
- its stream entry id: the relay's XADD to `payment:events` (Redis's clock).

So the hops are: API intake (parse, verify, wait for a writer); the ingest transaction, its commit,
the NOTIFY and the processor's claim (waiting for its previous batch); the processor's transaction,
its commit and the relay's wake-up (NOTIFY, linger); the relay's claim and XADD; and the notifier's
read and emit. All clocks are this machine's.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from bench.payloads import MERCHANT_ID, razorpay_event_id, razorpay_order_id, razorpay_payment_id
from bench.stats import percentile
from paystream.db import Connection

HOPS = (
    "api_intake",
    "ingest_commit_to_processor",
    "processor_commit_to_relay",
    "relay_to_payment_stream",
    "notifier_to_socket",
    "total",
)

TIMESTAMPS = """
WITH n AS MATERIALIZED (
    SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[]) AS n(i, event_id, payment_id, invoice_id)
), so AS MATERIALIZED (
    SELECT convert_from(payload, 'UTF8')::jsonb ->> 'invoice_id' AS invoice_id, stream_entry_id,
           published_at
    FROM outbox WHERE event_type = 'payment.success' AND merchant_id = $5
)
SELECT n.i,
       extract(epoch FROM e.received_at) AS ingest_at,
       extract(epoch FROM p.created_at) AS processor_at,
       extract(epoch FROM so.published_at) AS payment_relay_at,
       split_part(so.stream_entry_id, '-', 1)::float8 / 1000 AS payment_xadd_at
FROM n
JOIN provider_events e ON e.provider = 'razorpay' AND e.merchant_id = $5 AND e.event_id = n.event_id
JOIN provider_payments p ON p.provider = 'razorpay' AND p.merchant_id = $5 AND p.payment_id = n.payment_id
JOIN so ON so.invoice_id = n.invoice_id
"""


async def trace(
    conn: Connection, namespace: str, timed: Sequence[tuple[int, float, float]]
) -> dict[str, dict[str, float | None]]:
    """p50/p90/p99 in ms of each hop over the timed invoices (`(index, posted_at, arrived_at)`)."""
    wall = {i: (posted, arrived) for i, posted, arrived in timed}
    indexes = list(wall)
    rows = await conn.fetch(
        TIMESTAMPS,
        indexes,
        [razorpay_event_id(namespace, i) for i in indexes],
        [razorpay_payment_id(namespace, i) for i in indexes],
        [razorpay_order_id(namespace, i) for i in indexes],
        MERCHANT_ID,
    )
    hops: dict[str, list[float]] = {hop: [] for hop in HOPS}
    for row in rows:
        posted, arrived = wall[row["i"]]
        marks = [
            posted,
            float(row["ingest_at"]),
            float(row["processor_at"]),
            float(row["payment_relay_at"]),
            float(row["payment_xadd_at"]),
            arrived,
        ]
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
    summary["traced"] = {"events": float(len(rows))}
    return summary


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)
