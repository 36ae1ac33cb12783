"""ingest: correctly signed Razorpay webhooks, each with a unique `x-razorpay-event-id`, answered 200,
measured in rounds alternated with the bare HTTP baseline it is divided by.

`POST /api/v1/providers/razorpay/webhook` with `X-Razorpay-Signature` = hex HMAC-SHA256 of the raw
body keyed with RAZORPAY_WEBHOOK_SECRET; the API answers only once the event and its outbox row
have committed. Closed loop, `--concurrency` connections, `--duration` seconds after `--warmup`.

Why rounds: on a shared 2-core virtual machine the speed of the machine itself drifts by ±20% over
tens of seconds (seen here: the bare baseline at 5,900 and at 12,400 requests/s within minutes), so
one baseline followed by one ingest run gave ratios anywhere from 0.36 to 0.65 for the same code.
Each of `--rounds` rounds runs the baseline and ingest back to back (in alternating order, so a
steady drift favours neither), and the figures are the medians: `baseline_http_rps` and
`ingest_rps` over the rounds, `ingest_ratio` over the rounds' own ratios. Every round is recorded.

The figure is the API's verified, durable ingest: the stream consumers (processor, dispatcher,
notifier) are paused with SIGSTOP through all the rounds, as a provider's burst would find them busy,
and resumed afterwards. On these two cores they would otherwise take the same CPU (the e2e scenario
measures the whole pipeline). Nothing is skipped on the request path: signature, group-committed
INSERT of the event (the row is the processor's work: no outbox entry), and the 200 only after the
commit. Which service's outbox relay led is recorded too (it publishes nothing of ingest's).

Checks: every event answered 200 is one `provider_events` row waiting for the processor (lost
otherwise; the primary key admits no second row).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from bench.context import BenchContext, Check, LoadResult, ScenarioResult
from bench.payloads import MERCHANT_ID, razorpay_event_id
from bench.platform import RAZORPAY_SECRET
from bench.scenarios import http_baseline
from bench.stats import LatencySeries
from paystream.outbox import LEADER_LOCK_HOLDER, RELAY_LEADER_KEY, advisory_lock_ids

NAME = "ingest"


@dataclass(frozen=True, slots=True)
class Round:
    baseline: LoadResult
    ingest: LoadResult
    baseline_cpu: dict[str, float]
    ingest_cpu: dict[str, float]

    @property
    def ratio(self) -> float:
        return self.ingest.rps / self.baseline.rps if self.baseline.rps else 0.0

    def record(self) -> dict[str, Any]:
        return {
            "baseline_http_rps": round(self.baseline.rps, 1),
            "ingest_rps": round(self.ingest.rps, 1),
            "ingest_ratio": round(self.ratio, 3),
            "baseline_client_cpu_cores": round(self.baseline.client_cpu_cores, 2),
            "ingest_client_cpu_cores": round(self.ingest.client_cpu_cores, 2),
            "baseline_cpu_cores": self.baseline_cpu,
            "ingest_cpu_cores": self.ingest_cpu,
            "failures": dict(self.baseline.failures + self.ingest.failures),
        }


async def run(ctx: BenchContext) -> ScenarioResult:
    settled = await ctx.settle()
    rounds: list[Round] = []
    with ctx.platform.consumers_paused():
        relay_leader = await _relay_leader(ctx)
        for number in range(ctx.params.rounds):
            if number % 2 == 0:
                baseline, baseline_cpu = await _measured(ctx, _baseline, number)
                ingest, ingest_cpu = await _measured(ctx, _ingest, number)
            else:
                ingest, ingest_cpu = await _measured(ctx, _ingest, number)
                baseline, baseline_cpu = await _measured(ctx, _baseline, number)
            rounds.append(Round(baseline, ingest, baseline_cpu, ingest_cpu))
    baseline_series = _merged(http_baseline.NAME, [r.baseline for r in rounds])
    ingest_series = _merged(NAME, [r.ingest for r in rounds])
    summary = ingest_series.summary()
    return ScenarioResult(
        name=NAME,
        figures={
            "baseline_http_rps": round(statistics.median(r.baseline.rps for r in rounds), 1),
            "ingest_rps": round(statistics.median(r.ingest.rps for r in rounds), 1),
            "ingest_p50_ms": summary["p50_ms"],
            "ingest_p99_ms": summary["p99_ms"],
            "ingest_ratio": round(statistics.median(r.ratio for r in rounds), 3),
        },
        details={
            **summary,
            "rounds": [r.record() for r in rounds],
            "settle": {
                "drained": settled.drained,
                "waited_s": round(settled.waited_s, 2),
                "left": settled.backlog,
            },
            "consumers": "paused (SIGSTOP) through every round",
            "outbox_relay_leader": relay_leader,
        },
        checks=[await _stored_check(ctx, [r.ingest for r in rounds])],
        series=[baseline_series, ingest_series],
    )


async def _measured(ctx: BenchContext, drive: Any, number: int) -> tuple[LoadResult, dict[str, float]]:
    meter = ctx.cpu_meter()
    meter.start()
    load: LoadResult = await drive(ctx, number)
    return load, meter.cores()


async def _baseline(ctx: BenchContext, number: int) -> LoadResult:
    return await ctx.closed_loop(
        http_baseline.NAME,
        url=f"{ctx.platform.bare_url}/",
        kind="razorpay",
        namespace=ctx.namespace(f"b{number}"),
        secret=RAZORPAY_SECRET,
        expect_status=200,
    )


async def _ingest(ctx: BenchContext, number: int) -> LoadResult:
    return await ctx.closed_loop(
        NAME,
        url=f"{ctx.platform.api_url}/api/v1/providers/razorpay/webhook",
        kind="razorpay",
        namespace=ctx.namespace(f"i{number}"),
        secret=RAZORPAY_SECRET,
        expect_status=200,
    )


def _merged(name: str, loads: list[LoadResult]) -> LatencySeries:
    series = LatencySeries(name)
    for load in loads:
        series.extend(load.series.started_at, load.series.latency_ms)
    return series


async def _relay_leader(ctx: BenchContext) -> str | None:
    """The application name of the session holding the outbox relay's leader lock."""
    async with ctx.platform.db().acquire() as conn:
        name: str | None = await conn.fetchval(
            f"SELECT application_name FROM pg_stat_activity WHERE pid IN ({LEADER_LOCK_HOLDER})",
            *advisory_lock_ids(RELAY_LEADER_KEY),
        )
    return name


async def _stored_check(ctx: BenchContext, loads: list[LoadResult]) -> Check:
    accepted = [
        razorpay_event_id(namespace, n)
        for load in loads
        for namespace, keys in load.ok_keys.items()
        for n in keys
    ]
    async with ctx.platform.db().acquire() as conn:
        # Event ids are the merchant's (the key is provider, merchant, event id).
        stored = await conn.fetchval(
            """SELECT count(*) FROM provider_events
               WHERE provider = 'razorpay' AND merchant_id = $2 AND event_id = ANY($1::text[])""",
            accepted,
            MERCHANT_ID,
        )
        waiting = await conn.fetchval(
            """SELECT count(*) FROM provider_events
               WHERE provider = 'razorpay' AND merchant_id = $2 AND event_id = ANY($1::text[])
                 AND status = 'received'""",
            accepted,
            MERCHANT_ID,
        )
    return Check(
        name="ingest: answered 200 -> provider_events rows waiting for the processor",
        expected=len(accepted),
        found=int(stored),
        lost=len(accepted) - int(stored),
        duplicated=0,  # the primary key (provider, merchant, event id) admits one row per event
        detail=f"{waiting} rows waiting (the processor is paused through the rounds)",
    )
