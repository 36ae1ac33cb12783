"""ingest: correctly signed Razorpay webhooks, each with a unique `x-razorpay-event-id`, answered 200.

`POST /api/v1/providers/razorpay/webhook` with `X-Razorpay-Signature` = hex HMAC-SHA256 of the raw
body keyed with RAZORPAY_WEBHOOK_SECRET; the API answers only once the event and its outbox row
have committed. Closed loop, `--concurrency` connections, `--duration` seconds after `--warmup`.

The figure is the API's verified, durable ingest: the stream consumers (processor, dispatcher,
notifier) are paused with SIGSTOP while it is measured, as a provider's burst would find them busy,
and resumed afterwards. On these two cores they would otherwise take the same CPU (the e2e scenario
measures the whole pipeline). Nothing is skipped on the request path: signature, group-committed
INSERT of the event and its outbox row, and the 200 only after the commit.

Checks: every event answered 200 is one `provider_events` row (lost otherwise) with exactly one
`provider_event.received` outbox entry (more is a duplicate).
"""

from __future__ import annotations

from bench.context import BenchContext, Check, LoadResult, ScenarioResult
from bench.payloads import razorpay_event_id
from bench.platform import RAZORPAY_SECRET

NAME = "ingest"


async def run(ctx: BenchContext) -> ScenarioResult:
    settled = await ctx.settle()
    meter = ctx.cpu_meter()
    meter.start()
    with ctx.platform.consumers_paused():
        load = await ctx.closed_loop(
            NAME,
            url=f"{ctx.platform.api_url}/api/v1/providers/razorpay/webhook",
            kind="razorpay",
            namespace=ctx.namespace("i"),
            secret=RAZORPAY_SECRET,
            expect_status=200,
        )
    cpu = meter.cores()
    summary = load.series.summary()
    return ScenarioResult(
        name=NAME,
        figures={
            "ingest_rps": round(load.rps, 1),
            "ingest_p50_ms": summary["p50_ms"],
            "ingest_p99_ms": summary["p99_ms"],
        },
        details={
            **load.summary(),
            "settle": {
                "drained": settled.drained,
                "waited_s": round(settled.waited_s, 2),
                "left": settled.backlog,
            },
            "cpu_cores": cpu,
            "consumers": "paused (SIGSTOP) while measured",
        },
        checks=[await _stored_check(ctx, load)],
        series=[load.series],
    )


async def _stored_check(ctx: BenchContext, load: LoadResult) -> Check:
    accepted = [razorpay_event_id(namespace, n) for namespace, keys in load.ok_keys.items() for n in keys]
    async with ctx.platform.db().acquire() as conn:
        stored = await conn.fetchval(
            "SELECT count(*) FROM provider_events WHERE provider = 'razorpay' AND event_id = ANY($1::text[])",
            accepted,
        )
        queued = await conn.fetch(
            """SELECT event_id, count(*) AS copies
               FROM (SELECT convert_from(payload, 'UTF8')::jsonb -> 'data' ->> 'event_id' AS event_id
                     FROM outbox WHERE event_type = 'provider_event.received') AS entries
               WHERE event_id = ANY($1::text[])
               GROUP BY event_id""",
            accepted,
        )
    return Check(
        name="ingest: answered 200 -> provider_events rows, one outbox entry each",
        expected=len(accepted),
        found=int(stored),
        lost=len(accepted) - int(stored),
        duplicated=sum(row["copies"] - 1 for row in queued),
        detail=f"{len(queued)} events with a provider_event.received outbox entry",
    )
