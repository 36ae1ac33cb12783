"""`payctl claim STREAM GROUP --idle 60s --to CONSUMER`: hand idle pending entries to another consumer.

Claims use XCLAIM with JUSTID and the idle threshold as MIN-IDLE-TIME: an entry that became busy
again since it was listed is left alone, and moving an entry is not counted as a delivery (so it
brings the entry no closer to the dead-letter stream). The new owner handles it when its sweeper
next reclaims idle entries, or at once if it is running a burst.
"""

from __future__ import annotations

import argparse
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from payctl.args import duration_arg, positive_int
from payctl.context import Context, redis_refusal
from payctl.render import table
from paystream.streaminfo import consumer_infos, pending_entries, text

PAGE = 100


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "claim",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="move idle pending entries to another consumer",
    )
    parser.add_argument("stream")
    parser.add_argument("group")
    parser.add_argument(
        "--idle", type=duration_arg, required=True, help="only entries idle at least this long"
    )
    parser.add_argument("--to", required=True, metavar="CONSUMER", help="the consumer that takes them")
    parser.add_argument("--from-consumer", metavar="NAME", help="only entries owned by this consumer")
    parser.add_argument("--id", action="append", dest="ids", metavar="ID", help="only these entries")
    parser.add_argument("--limit", type=positive_int, help="claim at most this many")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    min_idle_ms = int(args.idle * 1000)
    try:
        known = {item.name for item in await consumer_infos(redis, args.stream, args.group)}
        claimed: list[str] = []
        if args.ids:
            claimed = await _claim(
                redis, args, args.ids[: args.limit] if args.limit else args.ids, min_idle_ms
            )
        else:
            cursor = "-"
            while args.limit is None or len(claimed) < args.limit:
                page = await pending_entries(
                    redis,
                    args.stream,
                    args.group,
                    min_idle_ms=min_idle_ms,
                    consumer=args.from_consumer,
                    start=cursor,
                    count=PAGE,
                )
                wanted = [entry.id for entry in page if entry.consumer != args.to]
                if args.limit is not None:
                    wanted = wanted[: args.limit - len(claimed)]
                claimed += await _claim(redis, args, wanted, min_idle_ms)
                if len(page) < PAGE:
                    break
                cursor = f"({page[-1].id}"
    except ResponseError as exc:
        raise redis_refusal(exc, stream=args.stream, group=args.group) from None
    payload = {
        "stream": args.stream,
        "group": args.group,
        "to": args.to,
        "new_consumer": args.to not in known,
        "claimed": claimed,
        "count": len(claimed),
    }
    text_out = f"claimed {len(claimed)} entr{'y' if len(claimed) == 1 else 'ies'} for {args.to}"
    if args.to not in known:
        text_out += f" (a new consumer in {args.group}: check the name)"
    if claimed:
        text_out += "\n\n" + table(["id"], [[entry_id] for entry_id in claimed])
    ctx.out.result(payload, text_out)
    return 0


async def _claim(
    redis: aioredis.Redis, args: argparse.Namespace, ids: list[str], min_idle_ms: int
) -> list[str]:
    if not ids:
        return []
    message_ids: list[int | bytes | str | memoryview] = list(ids)
    reply = await redis.xclaim(args.stream, args.group, args.to, min_idle_ms, message_ids, justid=True)
    return [text(entry_id) for entry_id in reply]
