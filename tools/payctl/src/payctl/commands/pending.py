"""`payctl pending STREAM GROUP`: the group's pending entries with consumer, idle time, delivery count
and event type."""

from __future__ import annotations

import argparse
from typing import Any

from redis.exceptions import ResponseError

from payctl.args import duration_arg, positive_int
from payctl.context import Context, redis_refusal, seconds
from payctl.durations import format_duration
from payctl.entries import decode_entry
from payctl.render import table
from paystream.streaminfo import entry_age_s, pending_entries, server_time_ms


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pending",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="a group's pending entries",
    )
    parser.add_argument("stream")
    parser.add_argument("group")
    parser.add_argument("--idle", type=duration_arg, help="only entries idle at least this long (60s, 5m)")
    parser.add_argument("--consumer", help="only entries owned by this consumer")
    parser.add_argument("--from", dest="start", default="-", help="first entry id to show (default: oldest)")
    parser.add_argument(
        "--limit", type=positive_int, default=100, help="at most this many entries (default 100)"
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    try:
        summary = await redis.xpending(args.stream, args.group)
        entries = await pending_entries(
            redis,
            args.stream,
            args.group,
            min_idle_ms=None if args.idle is None else int(args.idle * 1000),
            consumer=args.consumer,
            start=args.start,
            count=args.limit,
        )
    except ResponseError as exc:
        raise redis_refusal(exc, stream=args.stream, group=args.group) from None
    now_ms = await server_time_ms(redis)
    async with redis.pipeline(transaction=False) as pipe:
        for entry in entries:
            pipe.xrange(args.stream, min=entry.id, max=entry.id, count=1)
        bodies: list[Any] = await pipe.execute()
    rows: list[dict[str, Any]] = []
    for entry, body in zip(entries, bodies, strict=True):
        decoded = decode_entry(body[0][0], body[0][1]) if body else None  # none: deleted while pending
        event = decoded.event if decoded else None
        age = entry_age_s(entry.id, now_ms)
        rows.append(
            {
                "id": entry.id,
                "consumer": entry.consumer,
                "idle_s": seconds(entry.idle_ms),
                "deliveries": entry.deliveries,
                "age_s": None if age is None else round(age, 3),
                "deleted": decoded is None,
                "event_type": event.type.value if event else None,
                "event_id": event.id if event else None,
                "merchant_id": event.merchant_id if event else None,
            }
        )
    payload = {
        "stream": args.stream,
        "group": args.group,
        "total_pending": int(summary["pending"]),
        "entries": rows,
    }
    text = table(
        ["id", "consumer", "idle", "deliveries", "age", "type", "merchant"],
        [
            [
                row["id"],
                row["consumer"],
                format_duration(row["idle_s"]),
                row["deliveries"],
                format_duration(row["age_s"]),
                "(deleted from stream)" if row["deleted"] else row["event_type"] or "(malformed)",
                row["merchant_id"],
            ]
            for row in rows
        ],
        empty="(no pending entries match)",
    )
    text += f"\n\n{len(rows)} shown, {payload['total_pending']} pending in {args.group} on {args.stream}"
    ctx.out.result(payload, text)
    return 0
