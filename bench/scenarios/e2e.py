"""e2e: provider webhook POST -> `payment:completed` on a Socket.IO client, open-loop, up a ladder.

Each rung of `e2e_ladder` offers one rate for `e2e_duration_s` to `e2e_sockets` Socket.IO clients,
each subscribed to its own invoices (a fleet of salon frontends); the ladder stops above the first
rung past the headline rate (`e2e_rate`) whose completions fall behind. The scenario reports the headline
rung's p50/p99, `e2e_capacity_rps` (the highest rung that kept up with p99 under 50 ms), CPU per
event per process, and a per-hop trace of the headline rung (`bench.trace`).

The path measured: the API verifies and group-commits the webhook into `provider_events` and
NOTIFYs; the payment processor claims the row, records the captured payment and commits
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
from dataclasses import dataclass
from typing import Any

import orjson

from bench.context import BenchContext, Check, ScenarioResult
from bench.e2e_driver import invoice_count, salon_of
from bench.payloads import MERCHANT_ID, razorpay_event_id, razorpay_order_id, razorpay_payment_id
from bench.platform import JWT_SECRET, RAZORPAY_SECRET
from bench.stats import LatencySeries, rounded
from bench.trace import trace
from paystream.invoices import record_invoice_owner

NAME = "e2e"
# After the last webhook, completions are awaited while they keep coming (none for IDLE_S: the rest
# are lost), at most MAX_WAIT_S.
IDLE_S = 5.0
MAX_WAIT_S = 120.0
# A rung keeps up when completions came at least at this share of the offered rate, nothing was
# lost and p99 stayed under CAPACITY_P99_MS; e2e_capacity_rps is the highest rung that did.
KEEPS_UP_SHARE = 0.95
CAPACITY_P99_MS = 50.0


async def record_owners(ctx: BenchContext, namespace: str, count: int) -> float:
    started = time.monotonic()
    async with ctx.platform.db().acquire() as conn, conn.transaction():
        for i in range(count):
            await record_invoice_owner(
                conn, MERCHANT_ID, razorpay_order_id(namespace, i), salon_of(i, ctx.params.e2e_sockets)
            )
    return time.monotonic() - started


@dataclass(frozen=True, slots=True)
class Rung:
    """One rate of the ladder: what the driver saw, the stores' checks and the CPU it cost."""

    rate: float
    output: dict[str, Any]
    checks: list[Check]
    series: LatencySeries
    cpu_s: dict[str, float]
    namespace: str
    owners_s: float

    @property
    def summary(self) -> dict[str, Any]:
        return self.series.summary()

    @property
    def lost(self) -> int:
        return sum(check.lost + check.duplicated for check in self.checks)

    @property
    def keeps_pace(self) -> bool:
        """Completions kept pace with the offered rate and nothing was lost."""
        return self.lost == 0 and self.output["completion_rate"] >= KEEPS_UP_SHARE * self.rate

    @property
    def keeps_up(self) -> bool:
        """Kept pace, with p99 under the goal."""
        p99 = self.summary["p99_ms"]
        return self.keeps_pace and p99 is not None and p99 < CAPACITY_P99_MS

    @property
    def cpu_ms_per_event(self) -> dict[str, float]:
        """CPU ms per accepted event of each process over the send window (first POST to last
        completion), and their total."""
        events = max(1, self.output["accepted"])
        per_process = {name: round(seconds * 1000 / events, 3) for name, seconds in self.cpu_s.items()}
        per_process["total"] = round(sum(self.cpu_s.values()) * 1000 / events, 3)
        return per_process

    def record(self) -> dict[str, Any]:
        output = self.output
        return {
            "rate": self.rate,
            "keeps_pace": self.keeps_pace,
            "keeps_up": self.keeps_up,
            "invoices": output["invoices"],
            "owners_recorded_s": round(self.owners_s, 2),
            "achieved_rate": round(output["achieved_rate"], 1),
            "completion_rate": round(output["completion_rate"], 1),
            "send_lag_p99_ms": rounded(output["send_lag_p99_ms"]),
            "webhook_post_p50_ms": rounded(output["post_p50_ms"]),
            "webhook_post_p99_ms": rounded(output["post_p99_ms"]),
            "post_failures": output["post_failures"],
            "subscribe_refused": output["subscribe_refused"],
            "unknown_invoices": output["unknown_invoices"],
            "latency": self.summary,
            "cpu_ms_per_event": self.cpu_ms_per_event,
        }


async def run_rung(ctx: BenchContext, rate: float, label: str) -> Rung:
    params = ctx.params
    await ctx.settle()
    namespace = ctx.namespace(label)
    count = invoice_count(rate, params.warmup_s + params.e2e_duration_s)
    owners_s = await record_owners(ctx, namespace, count)
    spec = {
        "api_url": ctx.platform.api_url,
        "notifier_url": ctx.platform.notifier_url,
        "razorpay_secret": RAZORPAY_SECRET,
        "jwt_secret": JWT_SECRET,
        "namespace": namespace,
        "rate": rate,
        "warmup_s": params.warmup_s,
        "duration_s": params.e2e_duration_s,
        "sockets": params.e2e_sockets,
        "idle_s": IDLE_S,
        "max_wait_s": MAX_WAIT_S,
        "cpu_pids": ctx.cpu_meter().pids,
    }
    spec_path = ctx.workdir / f"{label}.json"
    result_path = ctx.workdir / f"{label}.result.json"
    spec_path.write_bytes(orjson.dumps(spec))
    driver = ctx.platform.children.python(
        "e2e_driver", ["-m", "bench.e2e_driver", str(spec_path), str(result_path)]
    )
    try:
        code = await driver.wait(params.warmup_s + params.e2e_duration_s + MAX_WAIT_S + 120)
    finally:
        driver.stop(timeout=5)
    if code != 0 or not result_path.exists():
        raise RuntimeError(f"the e2e driver failed (exit {code}):\n{driver.tail()}")
    output: dict[str, Any] = orjson.loads(result_path.read_bytes())
    series = LatencySeries(f"{NAME} {rate:g}/s")
    series.extend(output["started_at"], output["latency_ms"])
    checks = [
        Check(
            name=f"e2e {rate:g}/s: accepted webhooks -> payment:completed received",
            expected=output["accepted"],
            found=output["received"],
            lost=len(output["lost"]),
            duplicated=output["duplicated"],
            detail=f"{output['duplicated_event_ids']} invoices completed under several event ids",
        ),
        await _stored_check(ctx, namespace, output["accepted_keys"], rate),
    ]
    return Rung(rate, output, checks, series, output["cpu_s"], namespace, owners_s)


async def run(ctx: BenchContext) -> ScenarioResult:
    """Climb the ladder of rates; stop above the first rung that does not keep up."""
    params = ctx.params
    rungs: list[Rung] = []
    for step, rate in enumerate(params.e2e_ladder):
        rung = await run_rung(ctx, rate, f"e{step}")
        rungs.append(rung)
        print(
            f"bench | e2e {rate:g}/s: p50 {rung.summary['p50_ms']} ms, p99 {rung.summary['p99_ms']} ms, "
            f"completed {rung.output['completion_rate']:.0f}/s, "
            f"CPU {rung.cpu_ms_per_event['total']} ms per event, keeps pace: {rung.keeps_pace}",
            flush=True,
        )
        if not rung.keeps_pace and rate >= params.e2e_rate:
            break  # saturated: a higher rate only queues more
    headline = next(rung for rung in rungs if rung.rate == params.e2e_rate)
    async with ctx.platform.db().acquire() as conn:
        hops = await trace(conn, ctx.platform.bus(), headline.namespace, headline.output["timed_wall"])
    print(
        "bench | e2e trace (p50/p99 ms): "
        + ", ".join(f"{hop} {v['p50_ms']}/{v['p99_ms']}" for hop, v in hops.items() if "p50_ms" in v),
        flush=True,
    )
    capacity = max((rung.rate for rung in rungs if rung.keeps_up), default=0.0)
    summary = headline.summary
    return ScenarioResult(
        name=NAME,
        figures={
            "e2e_rate": params.e2e_rate,
            "e2e_p50_ms": summary["p50_ms"],
            "e2e_p99_ms": summary["p99_ms"],
            "e2e_capacity_rps": capacity,
            "e2e_cpu_ms_per_event": headline.cpu_ms_per_event["total"],
        },
        details={
            "sockets": params.e2e_sockets,
            "timed_from_invoice": headline.output["measured_from"],
            "ladder": [rung.record() for rung in rungs],
            "trace": hops,
        },
        checks=[check for rung in rungs for check in rung.checks],
        series=[headline.series],
    )


async def _stored_check(ctx: BenchContext, namespace: str, accepted: list[int], rate: float) -> Check:
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
        name=f"e2e {rate:g}/s: accepted webhooks -> stored event, successful payment, one payment.success",
        expected=len(accepted),
        found=found,
        lost=len(accepted) - found,
        duplicated=max(0, int(emitted) - int(paid)),
        detail=f"{stored} provider_events rows, {paid} successful provider_payments, "
        f"{emitted} payment.success outbox rows",
    )
