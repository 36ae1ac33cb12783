"""create_payment: `POST /api/v1/payments` (201) with the test merchant's credentials, each request
with its own `Idempotency-Key` and `order_id`.

Each 201 means the payment, its `payment.created` and `payment.pending` outbox rows, its invoice
owner and the stored idempotent answer committed in one transaction. Closed loop like ingest.

Checks: every 201 is exactly one `payments` row for its `order_id` (none: lost; more: duplicated)
and one `payment.created` outbox row (more: duplicated).
"""

from __future__ import annotations

from bench.context import BenchContext, Check, LoadResult, ScenarioResult
from bench.payloads import MERCHANT_ID, payment_order_id

NAME = "create_payment"


async def run(ctx: BenchContext) -> ScenarioResult:
    settled = await ctx.settle()
    meter = ctx.cpu_meter()
    meter.start()
    load = await ctx.closed_loop(
        NAME,
        url=f"{ctx.platform.api_url}/api/v1/payments",
        kind="payment",
        namespace=ctx.namespace("p"),
        secret="",
        expect_status=201,
    )
    cpu = meter.cores()
    summary = load.series.summary()
    return ScenarioResult(
        name=NAME,
        figures={
            "create_payment_rps": round(load.rps, 1),
            "create_payment_p50_ms": summary["p50_ms"],
            "create_payment_p99_ms": summary["p99_ms"],
        },
        details={
            **load.summary(),
            "settle": {
                "drained": settled.drained,
                "waited_s": round(settled.waited_s, 2),
                "left": settled.backlog,
            },
            "cpu_cores": cpu,
        },
        checks=[await _stored_check(ctx, load)],
        series=[load.series],
    )


async def _stored_check(ctx: BenchContext, load: LoadResult) -> Check:
    created = [payment_order_id(namespace, n) for namespace, keys in load.ok_keys.items() for n in keys]
    async with ctx.platform.db().acquire() as conn:
        rows = await conn.fetch(
            """SELECT order_id, count(*) AS copies FROM payments
               WHERE merchant_id = $1 AND order_id = ANY($2::text[])
               GROUP BY order_id""",
            MERCHANT_ID,
            created,
        )
        announced = await conn.fetchval(
            """SELECT count(*) FROM outbox
               WHERE event_type = 'payment.created' AND merchant_id = $1
                 AND convert_from(payload, 'UTF8')::jsonb ->> 'invoice_id' = ANY($2::text[])""",
            MERCHANT_ID,
            created,
        )
    copies = sum(row["copies"] for row in rows)
    return Check(
        name="create_payment: answered 201 -> payments rows, one payment.created each",
        expected=len(created),
        found=len(rows),
        lost=len(created) - len(rows),
        duplicated=(copies - len(rows)) + max(0, int(announced) - copies),
        detail=f"{copies} payments rows, {announced} payment.created outbox rows",
    )
