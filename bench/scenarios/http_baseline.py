"""baseline_http: the bare limit of this machine, with the client that drives ingest and payments.

The load generator sends the same signed Razorpay webhooks it sends the API (same body sizes, same
client-side work per request) to `bench.bare_server`, an aiohttp handler on uvloop in its own process
that reads the body and answers 200. `ingest_ratio` and `create_payment_ratio` divide by this figure.
"""

from __future__ import annotations

from bench.context import BenchContext, ScenarioResult
from bench.platform import RAZORPAY_SECRET

NAME = "baseline_http"


async def run(ctx: BenchContext) -> ScenarioResult:
    settled = await ctx.settle()
    meter = ctx.cpu_meter()
    meter.start()
    load = await ctx.closed_loop(
        NAME,
        url=f"{ctx.platform.bare_url}/",
        kind="razorpay",
        namespace=ctx.namespace("b"),
        secret=RAZORPAY_SECRET,
        expect_status=200,
    )
    return ScenarioResult(
        name=NAME,
        figures={"baseline_http_rps": round(load.rps, 1)},
        details={
            **load.summary(),
            "settle": {"drained": settled.drained, "waited_s": round(settled.waited_s, 2)},
            "cpu_cores": meter.cores(),
        },
        series=[load.series],
    )
