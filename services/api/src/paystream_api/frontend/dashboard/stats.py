"""The dashboard's figures and chart series, each scoped to the signed-in merchant.

- `GET /api/v1/dashboard/payments/summary`: totals (count by status, successful volume per currency,
  success rate of the settled payments) and payments created per minute over the last hour, by
  their status now;
- `GET /api/v1/dashboard/webhooks/summary`: delivery success rate over the last 24 hours and per
  5 minutes over the last hour (delivered / attempted: a delivery whose last attempt failed counts
  as failing until a retry succeeds), and the event types an endpoint can subscribe to.

Both read the merchant's (merchant_id, created_at) indexes; buckets are counted in PostgreSQL and
the empty ones filled in here, so a chart always has every point of its hour.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from paystream.web import POOL, json_response
from paystream_api.auth import authenticate
from paystream_api.webhook_api.events import SUBSCRIBABLE_EVENT_TYPES

PAYMENT_MINUTES = 60
WEBHOOK_BUCKET_S = 300
WEBHOOK_BUCKETS = 12
# The payment statuses a chart shows; `created` (not yet accepted by the processor) counts as pending.
CHART_STATUSES = ("success", "failed", "pending")


def _rate(succeeded: int, settled: int) -> float | None:
    return None if settled == 0 else round(succeeded / settled, 4)


async def payments_summary(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    pool = request.app[POOL]
    by_currency = await pool.fetch(
        """SELECT currency,
                  count(*) AS total,
                  count(*) FILTER (WHERE status = 'success') AS succeeded,
                  count(*) FILTER (WHERE status = 'failed') AS failed,
                  COALESCE(sum(amount) FILTER (WHERE status = 'success'), 0)::bigint AS volume,
                  COALESCE(sum(amount_refunded), 0)::bigint AS refunded
           FROM payments WHERE merchant_id = $1 GROUP BY currency ORDER BY count(*) DESC, currency""",
        merchant.id,
    )
    total = sum(row["total"] for row in by_currency)
    succeeded = sum(row["succeeded"] for row in by_currency)
    failed = sum(row["failed"] for row in by_currency)
    now_minute = await pool.fetchval("SELECT floor(extract(epoch FROM now()) / 60)::bigint")
    first = now_minute - PAYMENT_MINUTES + 1
    counts = await pool.fetch(
        """SELECT floor(extract(epoch FROM created_at) / 60)::bigint AS minute,
                  CASE WHEN status IN ('success', 'failed') THEN status ELSE 'pending' END AS status,
                  count(*) AS n
           FROM payments
           WHERE merchant_id = $1 AND created_at >= to_timestamp($2::float8)
           GROUP BY 1, 2""",
        merchant.id,
        float(first * 60),
    )
    series: dict[str, list[int]] = {status: [0] * PAYMENT_MINUTES for status in CHART_STATUSES}
    for row in counts:
        index = row["minute"] - first
        if 0 <= index < PAYMENT_MINUTES:
            series[row["status"]][index] += row["n"]
    body: dict[str, Any] = {
        "totals": {
            "count": total,
            "succeeded": succeeded,
            "failed": failed,
            "pending": total - succeeded - failed,
            "success_rate": _rate(succeeded, succeeded + failed),
            "volume": [
                {"currency": row["currency"], "amount": row["volume"], "refunded": row["refunded"]}
                for row in by_currency
            ],
        },
        "per_minute": {
            "start": first * 60,
            "step_s": 60,
            "series": series,
        },
    }
    return json_response(body)


async def webhooks_summary(request: web.Request) -> web.Response:
    merchant = await authenticate(request)
    pool = request.app[POOL]
    day = await pool.fetchrow(
        """SELECT count(*) FILTER (WHERE status = 'success') AS delivered,
                  count(*) FILTER (WHERE status = 'failed' OR (status = 'pending' AND attempts > 0)) AS failing,
                  count(*) FILTER (WHERE status = 'pending' AND attempts = 0) AS waiting
           FROM webhook_deliveries WHERE merchant_id = $1 AND created_at >= now() - interval '24 hours'""",
        merchant.id,
    )
    assert day is not None
    now_bucket = await pool.fetchval(
        "SELECT floor(extract(epoch FROM now()) / $1::float8)::bigint", float(WEBHOOK_BUCKET_S)
    )
    first = now_bucket - WEBHOOK_BUCKETS + 1
    rows = await pool.fetch(
        """SELECT floor(extract(epoch FROM created_at) / $3::float8)::bigint AS bucket,
                  count(*) FILTER (WHERE status = 'success') AS delivered,
                  count(*) FILTER (WHERE status = 'failed' OR (status = 'pending' AND attempts > 0)) AS failing
           FROM webhook_deliveries
           WHERE merchant_id = $1 AND created_at >= to_timestamp($2::float8)
           GROUP BY 1""",
        merchant.id,
        float(first * WEBHOOK_BUCKET_S),
        float(WEBHOOK_BUCKET_S),
    )
    delivered = [0] * WEBHOOK_BUCKETS
    failing = [0] * WEBHOOK_BUCKETS
    for row in rows:
        index = row["bucket"] - first
        if 0 <= index < WEBHOOK_BUCKETS:
            delivered[index] = row["delivered"]
            failing[index] = row["failing"]
    body = {
        "event_types": sorted(SUBSCRIBABLE_EVENT_TYPES),
        "last_24h": {
            "delivered": day["delivered"],
            "failing": day["failing"],
            "waiting": day["waiting"],
            "success_rate": _rate(day["delivered"], day["delivered"] + day["failing"]),
        },
        "per_bucket": {
            "start": first * WEBHOOK_BUCKET_S,
            "step_s": WEBHOOK_BUCKET_S,
            "delivered": delivered,
            "failing": failing,
            "success_rate": [_rate(d, d + f) for d, f in zip(delivered, failing, strict=True)],
        },
    }
    return json_response(body)


def setup_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/dashboard/payments/summary", payments_summary)
    app.router.add_get("/api/v1/dashboard/webhooks/summary", webhooks_summary)
