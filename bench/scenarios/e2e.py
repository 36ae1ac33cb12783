"""e2e: provider webhook POST -> `payment:completed` on a Socket.IO client, open-loop at `e2e_rate`.

The path measured: the API verifies and group-commits the webhook with its outbox row; a relay
publishes it to `provider:events`; the payment processor records the captured payment and commits
`payment.success` to the outbox; a relay publishes that to `payment:events`; the notifier reads it
and emits `payment:completed` to `payment:<invoiceId>`, where the driver's socket is subscribed.

Before the run each invoice's owner is recorded with `paystream.invoices.record_invoice_owner`, the
same call the processor makes (orders created through `POST /api/v1/orders` record no owner, and the
Razorpay order ids are the provider's anyway), so the driver's salon-scoped sockets may subscribe.

Checks: every accepted webhook (200) has its `payment:completed` (lost otherwise), no invoice got
two (duplicated), and PostgreSQL holds one provider event and one successful provider payment per
accepted webhook.
"""

from __future__ import annotations

import time
from typing import Any

import orjson

from bench.context import BenchContext, Check, ScenarioResult
from bench.e2e_driver import invoice_count, salon_of
from bench.payloads import MERCHANT_ID, razorpay_event_id, razorpay_order_id, razorpay_payment_id
from bench.platform import JWT_SECRET, RAZORPAY_SECRET
from bench.stats import LatencySeries, rounded
from paystream.invoices import record_invoice_owner

NAME = "e2e"
# After the last webhook, completions are awaited while they keep coming (none for IDLE_S: the rest
# are lost), at most MAX_WAIT_S.
IDLE_S = 5.0
MAX_WAIT_S = 120.0


async def record_owners(ctx: BenchContext, namespace: str, count: int) -> float:
    started = time.monotonic()
    async with ctx.platform.db().acquire() as conn, conn.transaction():
        for i in range(count):
            await record_invoice_owner(
                conn, MERCHANT_ID, razorpay_order_id(namespace, i), salon_of(i, ctx.params.e2e_sockets)
            )
    return time.monotonic() - started


async def run(ctx: BenchContext) -> ScenarioResult:
    params = ctx.params
    settled = await ctx.settle()
    namespace = ctx.namespace("e")
    count = invoice_count(params.e2e_rate, params.warmup_s + params.e2e_duration_s)
    owners_s = await record_owners(ctx, namespace, count)
    spec = {
        "api_url": ctx.platform.api_url,
        "notifier_url": ctx.platform.notifier_url,
        "razorpay_secret": RAZORPAY_SECRET,
        "jwt_secret": JWT_SECRET,
        "namespace": namespace,
        "rate": params.e2e_rate,
        "warmup_s": params.warmup_s,
        "duration_s": params.e2e_duration_s,
        "sockets": params.e2e_sockets,
        "idle_s": IDLE_S,
        "max_wait_s": MAX_WAIT_S,
    }
    spec_path = ctx.workdir / "e2e.json"
    result_path = ctx.workdir / "e2e.result.json"
    spec_path.write_bytes(orjson.dumps(spec))
    meter = ctx.cpu_meter()
    meter.start()
    driver = ctx.platform.children.python(
        "e2e_driver", ["-m", "bench.e2e_driver", str(spec_path), str(result_path)]
    )
    try:
        code = await driver.wait(params.warmup_s + params.e2e_duration_s + MAX_WAIT_S + 120)
    finally:
        driver.stop(timeout=5)
    cpu = meter.cores()
    if code != 0 or not result_path.exists():
        raise RuntimeError(f"the e2e driver failed (exit {code}):\n{driver.tail()}")
    output: dict[str, Any] = orjson.loads(result_path.read_bytes())
    series = LatencySeries(NAME)
    series.extend(output["started_at"], output["latency_ms"])
    checks = [
        Check(
            name="e2e: accepted webhooks -> payment:completed received",
            expected=output["accepted"],
            found=output["received"],
            lost=len(output["lost"]),
            duplicated=output["duplicated"],
            detail=f"{output['duplicated_event_ids']} invoices completed under several event ids",
        ),
        await _stored_check(ctx, namespace, output["accepted_keys"]),
    ]
    summary = series.summary()
    return ScenarioResult(
        name=NAME,
        figures={
            "e2e_rate": params.e2e_rate,
            "e2e_p50_ms": summary["p50_ms"],
            "e2e_p99_ms": summary["p99_ms"],
        },
        details={
            "settle": {
                "drained": settled.drained,
                "waited_s": round(settled.waited_s, 2),
                "left": settled.backlog,
            },
            "owners_recorded_s": round(owners_s, 2),
            "invoices": count,
            "timed_from_invoice": output["measured_from"],
            "sockets": params.e2e_sockets,
            "achieved_rate": round(output["achieved_rate"], 1),
            "completion_rate": round(output["completion_rate"], 1),
            "send_lag_p99_ms": rounded(output["send_lag_p99_ms"]),
            "send_lag_max_ms": rounded(output["send_lag_max_ms"]),
            "webhook_post_p50_ms": rounded(output["post_p50_ms"]),
            "webhook_post_p99_ms": rounded(output["post_p99_ms"]),
            "post_failures": output["post_failures"],
            "subscribe_refused": output["subscribe_refused"],
            "unknown_invoices": output["unknown_invoices"],
            "latency": summary,
            "cpu_cores": cpu,
        },
        checks=checks,
        series=[series],
    )


async def _stored_check(ctx: BenchContext, namespace: str, accepted: list[int]) -> Check:
    """Each accepted webhook: one provider_events row, a successful provider payment, and exactly
    one `payment.success` in the outbox for its invoice."""
    event_ids = [razorpay_event_id(namespace, i) for i in accepted]
    payment_ids = [razorpay_payment_id(namespace, i) for i in accepted]
    invoice_ids = [razorpay_order_id(namespace, i) for i in accepted]
    async with ctx.platform.db().acquire() as conn:
        # Provider ids are the merchant's (keys are provider, merchant, id).
        stored = await conn.fetchval(
            """SELECT count(*) FROM provider_events
               WHERE provider = 'razorpay' AND merchant_id = $2 AND event_id = ANY($1::text[])""",
            event_ids,
            MERCHANT_ID,
        )
        paid = await conn.fetchval(
            """SELECT count(*) FROM provider_payments
               WHERE provider = 'razorpay' AND merchant_id = $2 AND payment_id = ANY($1::text[])
                 AND status = 'success'""",
            payment_ids,
            MERCHANT_ID,
        )
        emitted = await conn.fetchval(
            """SELECT count(*) FROM outbox
               WHERE event_type = 'payment.success' AND merchant_id = $1
                 AND convert_from(payload, 'UTF8')::jsonb ->> 'invoice_id' = ANY($2::text[])""",
            MERCHANT_ID,
            invoice_ids,
        )
    found = min(int(stored), int(paid))
    return Check(
        name="e2e: accepted webhooks -> stored event, successful payment, one payment.success",
        expected=len(accepted),
        found=found,
        lost=len(accepted) - found,
        duplicated=max(0, int(emitted) - int(paid)),
        detail=f"{stored} provider_events rows, {paid} successful provider_payments, "
        f"{emitted} payment.success outbox rows",
    )
