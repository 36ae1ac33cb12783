"""`payctl provider-events`: the stored provider webhooks the payment processors claim.

Verified provider webhooks wait in `provider_events` (status `received`) until a processor claims
them; an event whose handling failed `MAX_ATTEMPTS` times for a reason its content did not cause
(a bug, a deadlock) ends `failed`, their dead-letter state. This shows how many wait, how old the
oldest is, and the failed ones with their last error; `--redrive` puts the failed ones back to
wait (attempts reset) and wakes the processors, for once the cause is fixed.
"""

from __future__ import annotations

import argparse
from typing import Any

from payctl.args import positive_int
from payctl.context import Context
from payctl.durations import format_duration
from payctl.render import fields, table
from paystream.events import PROVIDER_EVENTS_CHANNEL
from paystream.streaminfo import provider_event_backlog


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "provider-events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents,
        help="stored provider webhooks: waiting, failed, re-drive",
    )
    parser.add_argument("--limit", type=positive_int, default=50, help="failed events to list (default 50)")
    parser.add_argument(
        "--redrive", action="store_true", help="put every failed event back to wait for a processor"
    )
    parser.set_defaults(handler=run)


FAILED = """SELECT provider, merchant_id, event_id, type, attempts, last_error, received_at, processed_at
            FROM provider_events WHERE status = 'failed' ORDER BY received_at LIMIT $1"""

REDRIVE = """UPDATE provider_events SET status = 'received', attempts = 0, processed_at = NULL
             WHERE status = 'failed'"""


async def run(args: argparse.Namespace, ctx: Context) -> int:
    conn = await ctx.stores.database()
    redriven = 0
    if args.redrive:
        async with conn.transaction():
            redriven = int((await conn.execute(REDRIVE)).split()[-1])
            await conn.execute("SELECT pg_notify($1, '')", PROVIDER_EVENTS_CHANNEL)
    backlog = await provider_event_backlog(conn)
    failed = [dict(row) for row in await conn.fetch(FAILED, args.limit)]
    payload = {
        "waiting": backlog.waiting,
        "oldest_waiting_s": round(backlog.oldest_age_s, 3),
        "failed": backlog.failed,
        "redriven": redriven,
        "failed_events": [
            {
                **row,
                "received_at": row["received_at"].isoformat(),
                "processed_at": row["processed_at"].isoformat() if row["processed_at"] else None,
            }
            for row in failed
        ],
    }
    summary = fields(
        [
            ("waiting", backlog.waiting),
            ("oldest waiting", format_duration(backlog.oldest_age_s) if backlog.waiting else "-"),
            ("failed", backlog.failed),
            *([("re-driven", redriven)] if args.redrive else []),
        ]
    )
    rows = [
        [
            row["provider"],
            row["merchant_id"],
            row["event_id"],
            row["type"],
            row["attempts"],
            row["last_error"] or "",
        ]
        for row in failed
    ]
    listing = table(
        ["provider", "merchant", "event", "type", "attempts", "last error"], rows, empty="(no failed events)"
    )
    ctx.out.result(payload, summary + "\n\n" + listing)
    return 0
