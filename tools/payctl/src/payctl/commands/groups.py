"""`payctl groups [STREAM]`: each group's consumers, pending count, lag, last delivered id and oldest
pending entry; each consumer's idle time."""

from __future__ import annotations

import argparse
from typing import Any

import redis.asyncio as aioredis

from payctl.context import Context, seconds
from payctl.durations import format_duration
from payctl.errors import NotFound
from payctl.render import table
from paystream.streaminfo import (
    BUS_STREAMS,
    GroupInfo,
    consumer_infos,
    entry_age_s,
    group_infos,
    pending_entry,
    server_time_ms,
    stream_info,
)


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "groups",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="consumer groups: consumers, pending, lag, oldest pending",
    )
    parser.add_argument("stream", nargs="?", help="one stream (default: the bus's streams)")
    parser.add_argument("--group", help="only this group")
    parser.set_defaults(handler=run)


async def describe_group(redis: aioredis.Redis, group: GroupInfo, now_ms: int) -> dict[str, Any]:
    """A group as payctl reports it (also used by `health`)."""
    consumers = await consumer_infos(redis, group.stream, group.group)
    oldest = (
        await pending_entry(redis, group.stream, group.group, group.oldest_pending_id)
        if group.oldest_pending_id
        else None
    )
    age = entry_age_s(group.oldest_pending_id, now_ms)
    return {
        "stream": group.stream,
        "group": group.group,
        "consumer_count": group.consumers,
        "consumers": [
            {"name": item.name, "pending": item.pending, "idle_s": seconds(item.idle_ms)}
            for item in consumers
        ],
        "pending": group.pending,
        "lag": group.lag,
        "lag_capped": group.lag_capped,
        "last_delivered_id": group.last_delivered_id,
        "oldest_pending_id": group.oldest_pending_id,
        "oldest_pending_age_s": None if age is None else round(age, 3),
        "oldest_pending_idle_s": seconds(oldest.idle_ms) if oldest else None,
        "oldest_pending_deliveries": oldest.deliveries if oldest else None,
        "oldest_pending_consumer": oldest.consumer if oldest else None,
    }


async def run(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    streams = [args.stream] if args.stream else list(BUS_STREAMS)
    now_ms = await server_time_ms(redis)
    groups: list[dict[str, Any]] = []
    for stream in streams:
        info = await stream_info(redis, stream)
        if not info.exists:
            if args.stream:
                raise NotFound(f"stream {stream!r} does not exist")
            continue
        for group in await group_infos(redis, stream, info=info):
            if args.group is None or group.group == args.group:
                groups.append(await describe_group(redis, group, now_ms))
    if args.group is not None and not groups:
        raise NotFound(f"no consumer group {args.group!r} on {', '.join(streams)}")
    ctx.out.result({"now_ms": now_ms, "groups": groups}, render(groups))
    return 0


def lag_text(group: dict[str, Any]) -> str:
    return f">={group['lag']}" if group["lag_capped"] else str(group["lag"])


def render(groups: list[dict[str, Any]]) -> str:
    group_rows = [
        [
            item["stream"],
            item["group"],
            item["consumer_count"],
            item["pending"],
            lag_text(item),
            item["last_delivered_id"],
            format_duration(item["oldest_pending_age_s"]) if item["oldest_pending_id"] else "-",
            item["oldest_pending_deliveries"],
        ]
        for item in groups
    ]
    consumer_rows = [
        [
            item["stream"],
            item["group"],
            consumer["name"],
            consumer["pending"],
            format_duration(consumer["idle_s"]),
        ]
        for item in groups
        for consumer in item["consumers"]
    ]
    return "\n\n".join(
        [
            table(
                [
                    "stream",
                    "group",
                    "consumers",
                    "pending",
                    "lag",
                    "last delivered",
                    "oldest pending",
                    "deliveries",
                ],
                group_rows,
                empty="(no consumer groups)",
            ),
            table(["stream", "group", "consumer", "pending", "idle"], consumer_rows, empty="(no consumers)"),
        ]
    )
