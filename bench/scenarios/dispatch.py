"""dispatch: signed merchant webhooks delivered per second, beside the raw client's POST rate.

1. The test merchant's endpoint is set to the receiver (`PUT /api/v1/webhooks/config`), and the
   receiver is given the merchant's secret, so it counts only deliveries whose signature verifies.
2. baseline_client: the load generator POSTs signed deliveries of the same size to the receiver's
   `/baseline`, over as many connections as the dispatcher may hold open to one endpoint
   (`--dispatch-concurrency`, its WEBHOOK_ENDPOINT_MAX_IN_FLIGHT default).
3. `--dispatch-count` `payment.success` events (one payment each) are committed to the outbox in
   large transactions with `paystream.outbox.enqueue`, as a service's state change would; the relays
   publish them to `payment:events`, the dispatcher records one delivery each and sends them.
4. dispatch_rps = deliveries / (last arrival - first arrival) at the receiver.

After the run the endpoint is disabled again, so later scenarios do not pay for deliveries.

Checks: every event arrived (lost otherwise), each under one webhook-id (an event under several ids
is a duplicate the merchant would act on twice), and PostgreSQL holds one delivery row per event.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, cast

import aiohttp
import orjson

from bench.context import BenchContext, Check, ScenarioResult
from bench.payloads import API_KEY, API_SECRET, success_payment
from paystream import outbox
from paystream.events import EventType, Stream
from paystream.resources import PaymentResource, payment_event

NAME = "dispatch"
COMMIT_BATCH = 2000
POLL_S = 0.25
# Past the ordering settle time (1 s) and a test-mode retry interval (5 s): quiet this long, the
# dispatcher has stopped delivering.
IDLE_S = 15.0
MAX_WAIT_S = 300.0
API_HEADERS = {"X-Api-Key": API_KEY, "X-Api-Secret": API_SECRET, "Content-Type": "application/json"}


def payment(namespace: str, n: int) -> PaymentResource:
    return cast(PaymentResource, success_payment(f"pay_{namespace}_{n}", f"order_{namespace}_{n}"))


async def configure_endpoint(ctx: BenchContext, *, enabled: bool) -> str:
    """Point the test merchant's webhooks at the receiver; returns the merchant's webhook secret."""
    body = {"url": f"{ctx.platform.receiver_url}/hooks", "enabled": enabled}
    async with aiohttp.ClientSession() as session:
        async with session.put(
            f"{ctx.platform.api_url}/api/v1/webhooks/config", data=orjson.dumps(body), headers=API_HEADERS
        ) as response:
            answer = await response.read()
            if response.status != 200:
                raise RuntimeError(
                    f"PUT /api/v1/webhooks/config answered {response.status}: {answer[:300]!r}"
                )
        secret = str(orjson.loads(answer)["secret"])
        if enabled:
            async with session.post(
                f"{ctx.platform.receiver_url}/_bench/secret", data=orjson.dumps({"secret": secret})
            ) as response:
                response.raise_for_status()
    return secret


async def receiver_stats(ctx: BenchContext, bucket: str, prefix: str) -> dict[str, Any]:
    url = f"{ctx.platform.receiver_url}/_bench/stats"
    params = {"bucket": bucket, "prefix": prefix}
    async with aiohttp.ClientSession() as session, session.get(url, params=params) as response:
        response.raise_for_status()
        stats: dict[str, Any] = orjson.loads(await response.read())
    return stats


async def produce(ctx: BenchContext, namespace: str, count: int) -> list[str]:
    """Commit `count` payment.success events to the outbox; returns their event ids."""
    event_ids: list[str] = []
    for start in range(0, count, COMMIT_BATCH):
        events = [
            payment_event(EventType.PAYMENT_SUCCESS, payment(namespace, n))
            for n in range(start, min(count, start + COMMIT_BATCH))
        ]
        async with ctx.platform.db().acquire() as conn, conn.transaction():
            await outbox.enqueue(conn, Stream.PAYMENT_EVENTS, events)
        event_ids.extend(event.id for event in events)
    return event_ids


async def wait_for_deliveries(ctx: BenchContext, prefix: str, count: int) -> dict[str, Any]:
    """Until `count` events arrived, or deliveries stopped arriving for IDLE_S (the rest are lost),
    at most MAX_WAIT_S."""
    deadline = time.monotonic() + MAX_WAIT_S
    seen, progressed_at = -1, time.monotonic()
    while True:
        stats = await receiver_stats(ctx, "hooks", prefix)
        now = time.monotonic()
        if stats["events"] != seen:
            seen, progressed_at = stats["events"], now
        if seen >= count or now - progressed_at > IDLE_S or now > deadline:
            return stats
        ctx.platform.check_alive()
        await asyncio.sleep(POLL_S)


async def run(ctx: BenchContext) -> ScenarioResult:
    params = ctx.params
    settled = await ctx.settle()
    secret = await configure_endpoint(ctx, enabled=True)
    baseline = await ctx.closed_loop(
        "baseline_client",
        url=f"{ctx.platform.receiver_url}/baseline",
        kind="delivery",
        namespace=ctx.namespace("c"),
        secret=secret,
        expect_status=200,
        concurrency=params.dispatch_concurrency,
    )
    namespace = ctx.namespace("d")
    prefix = f"pay_{namespace}_"
    meter = ctx.cpu_meter()
    meter.start()
    produce_started = time.monotonic()
    event_ids = await produce(ctx, namespace, params.dispatch_count)
    produced_s = time.monotonic() - produce_started
    stats = await wait_for_deliveries(ctx, prefix, params.dispatch_count)
    cpu = meter.cores()
    # A moment more, so that a second copy right behind the last first copy is counted too.
    await asyncio.sleep(0.5)
    stats = await receiver_stats(ctx, "hooks", prefix)
    first, last = stats["first_at"], stats["last_at"]
    window = (last - first) if first is not None and last is not None else 0.0
    rate = (stats["events"] - 1) / window if window > 0 else None
    checks = [
        Check(
            name="dispatch: events committed -> delivered to the receiver",
            expected=params.dispatch_count,
            found=stats["events"],
            lost=params.dispatch_count - stats["events"],
            duplicated=stats["events_under_several_ids"],
            detail=f"{stats['bad_signatures']} bad signatures, {stats['redelivered_ids']} webhook-ids "
            "received more than once",
        ),
        await _delivery_rows_check(ctx, event_ids),
    ]
    await configure_endpoint(ctx, enabled=False)
    return ScenarioResult(
        name=NAME,
        figures={
            "dispatch_rps": round(rate, 1) if rate is not None else None,
            "baseline_client_rps": round(baseline.rps, 1),
        },
        details={
            "settle": {
                "drained": settled.drained,
                "waited_s": round(settled.waited_s, 2),
                "left": settled.backlog,
            },
            "events": params.dispatch_count,
            "commit_s": round(produced_s, 2),
            "first_to_last_s": round(window, 2),
            "commit_to_last_s": round(last - produce_started, 2) if last is not None else None,
            "commit_to_first_s": round(first - produce_started, 2) if first is not None else None,
            "receiver": stats,
            "baseline_client": baseline.summary(),
            "cpu_cores": cpu,
        },
        checks=checks,
        series=[baseline.series],
    )


async def _delivery_rows_check(ctx: BenchContext, event_ids: list[str]) -> Check:
    """One delivery row per event, marked success (outcomes are recorded in batches: wait a little)."""
    deadline = time.monotonic() + 15
    while True:
        async with ctx.platform.db().acquire() as conn:
            rows = await conn.fetch(
                """SELECT event_id, count(*) AS copies, count(*) FILTER (WHERE status = 'success') AS delivered
                   FROM webhook_deliveries WHERE event_id = ANY($1::uuid[])
                   GROUP BY event_id""",
                event_ids,
            )
        delivered = sum(1 for row in rows if row["delivered"])
        if delivered >= len(event_ids) or time.monotonic() > deadline:
            break
        await asyncio.sleep(POLL_S)
    return Check(
        name="dispatch: events committed -> webhook_deliveries rows marked success",
        expected=len(event_ids),
        found=delivered,
        lost=len(event_ids) - delivered,
        duplicated=sum(row["copies"] - 1 for row in rows),
        detail=f"{len(rows)} events with a delivery row",
    )
