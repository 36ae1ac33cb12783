"""`payctl replay --since TIME`: re-publish events from the PostgreSQL outbox, for after a Redis data loss.

Published outbox rows created in [--since, --until) are read in id order (the order they were first
published) and each stored payload is XADDed to its stream again, with its number in its payment's
order (`seq`) when it has one, as the relay published it. Rows not yet published are left to
the outbox relay, which publishes them anyway. Consumers are idempotent on the event id, so events
Redis still had are skipped by their handlers. The outbox keeps published rows for
`OUTBOX_RETENTION_DAYS` (7 by default); the output names the oldest row still available.

`--group G` narrows the replay to the streams G consumes, as Redis reports them (XINFO GROUPS); the
other groups on those streams see the events too and skip the ones they handled. No group position
is reset: replayed events are new entries, delivered after everything the group has read.
`--stream S` narrows it explicitly (say, when Redis lost its groups as well). With shards
(STREAM_SHARDS > 1) each row goes to the shard the relay chose for it (`paystream.shards`): a payment's
events to its one shard; `--stream payment:events:{1}` means its logical stream, all shards.
"""

from __future__ import annotations

import argparse
from collections import Counter
from datetime import datetime
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from payctl.args import positive_int, time_arg
from payctl.context import Context
from payctl.errors import NotFound, PayctlError
from payctl.render import fields, table
from paystream.events import entry_fields
from paystream.shards import StreamLayout, logical_stream
from paystream.streaminfo import text


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "replay",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=parents,
        help="re-publish events from the PostgreSQL outbox (after a Redis data loss)",
    )
    parser.add_argument(
        "--since",
        type=time_arg,
        required=True,
        metavar="TIME",
        help="ISO 8601 time (UTC if no zone) or 2h/30m ago",
    )
    parser.add_argument("--until", type=time_arg, metavar="TIME", help="up to this time (default: now)")
    parser.add_argument("--group", help="only the streams this consumer group reads")
    parser.add_argument(
        "--stream", action="append", dest="streams", metavar="STREAM", help="only this stream"
    )
    parser.add_argument("--batch", type=positive_int, default=500, help="rows per round trip (default 500)")
    parser.add_argument("--dry-run", action="store_true", help="count what would be replayed")
    parser.set_defaults(handler=run)


async def streams_of_group(redis: aioredis.Redis, group: str, keys: list[str]) -> list[str]:
    """The logical streams (the outbox's `stream`) of whose shard keys `group` reads one."""
    streams: list[str] = []
    for key in keys:
        if not await redis.exists(key):
            continue
        groups = await redis.xinfo_groups(key)
        if any(text(item["name"]) == group for item in groups) and logical_stream(key) not in streams:
            streams.append(logical_stream(key))
    return streams


async def run(args: argparse.Namespace, ctx: Context) -> int:
    since: datetime = args.since
    until: datetime | None = args.until
    if until is not None and until <= since:
        raise PayctlError("--until must be after --since", exit_code=2)
    redis = await ctx.stores.redis()
    # The outbox names logical streams: a shard's key stands for its stream.
    streams: list[str] | None = (
        list(dict.fromkeys(logical_stream(stream) for stream in args.streams)) if args.streams else None
    )
    if args.group is not None:
        group_streams = await streams_of_group(redis, args.group, ctx.bus_streams)
        if not group_streams:
            raise NotFound(
                f"no stream has a consumer group {args.group!r} (Redis may have lost its groups too: "
                "start the services, or name the streams with --stream)"
            )
        streams = [stream for stream in group_streams if streams is None or stream in streams]
    conn = await ctx.stores.database()
    oldest = await conn.fetchval(f"SELECT min(created_at) FROM outbox WHERE {_PUBLISHED}")
    counts: Counter[str] = Counter()
    if args.dry_run:
        for row in await conn.fetch(
            f"SELECT stream, count(*) AS n FROM outbox WHERE {_FILTER} GROUP BY stream", since, until, streams
        ):
            counts[row["stream"]] = row["n"]
    else:
        counts = await _replay(
            conn, redis, since, until, streams, args.batch, ctx.settings.stream_maxlen, ctx.settings.layout
        )
    payload = {
        "since": since.isoformat(),
        "until": until.isoformat() if until else None,
        "group": args.group,
        "streams": dict(sorted(counts.items())),
        "replayed": sum(counts.values()),
        "dry_run": args.dry_run,
        "oldest_available": oldest.isoformat() if oldest else None,
    }
    summary = fields(
        [
            ("since", payload["since"]),
            ("until", payload["until"] or "now"),
            ("only streams", ", ".join(streams) if streams is not None else "all"),
            ("oldest in outbox", payload["oldest_available"]),
            ("would replay" if args.dry_run else "replayed", payload["replayed"]),
        ]
    )
    rows = [[stream, count] for stream, count in payload["streams"].items()]
    ctx.out.result(payload, summary + "\n\n" + table(["stream", "events"], rows, empty="(nothing to replay)"))
    return 0


# Published rows in the window, optionally on some streams only ($1 since, $2 until, $3 streams).
_PUBLISHED = "NOT EXISTS (SELECT FROM outbox_pending AS p WHERE p.id = outbox.id)"
_FILTER = f"""{_PUBLISHED}
    AND created_at >= $1
    AND ($2::timestamptz IS NULL OR created_at < $2)
    AND ($3::text[] IS NULL OR stream = ANY($3::text[]))"""


async def _replay(
    conn: asyncpg.Connection,
    redis: aioredis.Redis,
    since: datetime,
    until: datetime | None,
    streams: list[str] | None,
    batch: int,
    maxlen: int,
    layout: StreamLayout,
) -> Counter[str]:
    # Walk the primary key between the window's first and last ids: each page is an index range
    # scan, however large the outbox.
    bounds = await conn.fetchrow(
        f"SELECT min(id) AS low, max(id) AS high FROM outbox WHERE {_FILTER}", since, until, streams
    )
    counts: Counter[str] = Counter()
    if bounds is None or bounds["low"] is None:
        return counts
    cursor, high = bounds["low"] - 1, bounds["high"]
    while cursor < high:
        rows = await conn.fetch(
            f"""SELECT id, stream, payload, ordering_seq, event_id, merchant_id, ordering_key FROM outbox
                WHERE id > $4 AND id <= $5 AND {_FILTER}
                ORDER BY id LIMIT $6""",
            since,
            until,
            streams,
            cursor,
            high,
            batch,
        )
        if not rows:
            break
        # To the shard the relay chose (the same function), on whichever node holds it.
        async with redis.pipeline(transaction=False) as pipe:
            for row in rows:
                pipe.xadd(
                    layout.key_for(
                        row["stream"], row["merchant_id"], row["ordering_key"], str(row["event_id"])
                    ),
                    entry_fields(row["payload"], row["ordering_seq"]),  # type: ignore[arg-type]
                    maxlen=maxlen,
                    approximate=True,
                )
            await pipe.execute()
        counts.update(row["stream"] for row in rows)
        cursor = rows[-1]["id"]
    return counts
