"""`payctl groups [STREAM]`: each group's consumers (live or not), pending count, lag, last delivered
id and oldest pending entry; each consumer's heartbeat and idle time; and the notifier's readers
(plain XREAD, no group) with their position, lag and last heartbeat.

A consumer is live while its heartbeat record beats (every consumer of the runtime writes one, idle
or busy); a consumer without a record counts as live when Redis served it an entry within
--max-consumer-idle. Redis 6.2 lists a consumer only once it has been served an entry, and its idle
time counts from that entry, so neither says anything about a consumer on a quiet platform."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import redis.asyncio as aioredis

from payctl.args import duration_arg
from payctl.context import Context, seconds
from payctl.durations import format_duration
from payctl.errors import NotFound
from payctl.render import table
from paystream.heartbeat import HeartbeatStatus, read_heartbeats
from paystream.shards import logical_stream
from paystream.streaminfo import (
    SERVED_WITHIN_MS,
    GroupInfo,
    GroupMember,
    ReaderInfo,
    entry_age_s,
    group_infos,
    group_members,
    pending_entry,
    reader_infos,
    server_time_ms,
    stream_info,
)


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "groups",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="consumer groups and readers: live consumers, pending, lag, oldest pending",
    )
    parser.add_argument("stream", nargs="?", help="one stream (default: the bus's streams)")
    parser.add_argument("--group", help="only this group (and no readers)")
    add_consumer_idle_argument(parser)
    parser.set_defaults(handler=run)


def add_consumer_idle_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max-consumer-idle",
        type=duration_arg,
        default=SERVED_WITHIN_MS / 1000,
        metavar="DURATION",
        help="a consumer without a heartbeat counts as live when served an entry within this (2m)",
    )


def _moment(milliseconds: int | None) -> datetime | None:
    return None if milliseconds is None else datetime.fromtimestamp(milliseconds / 1000, UTC)


def heartbeat_json(beat: HeartbeatStatus) -> dict[str, Any]:
    return {
        "live": beat.live,
        "last_beat_s": seconds(beat.beat_age_ms),
        "last_read_s": seconds(beat.last_read_age_ms),
        "silent_after_s": seconds(beat.lapse_ms),
        "host": beat.host,
        "pid": beat.pid,
        # The process's own clock: for reading, not for arithmetic (ages above use Redis's).
        "started_at": _moment(beat.started_at_ms),
        "streams": list(beat.streams),
    }


async def describe_group(
    redis: aioredis.Redis, group: GroupInfo, now_ms: int, members: Sequence[GroupMember]
) -> dict[str, Any]:
    """A group as payctl reports it (also used by `health`)."""
    oldest = (
        await pending_entry(redis, group.stream, group.group, group.oldest_pending_id)
        if group.oldest_pending_id
        else None
    )
    age = entry_age_s(group.oldest_pending_id, now_ms)
    seen = [_seen_ms(member) for member in members]
    known = [value for value in seen if value is not None]
    return {
        "stream": group.stream,
        "group": group.group,
        "consumer_count": group.consumers,
        "live_consumers": sum(1 for member in members if member.live),
        "last_consumer_seen_s": seconds(min(known)) if known else None,
        "consumers": [
            {
                "name": member.name,
                "live": member.live,
                "pending": member.pending,
                "idle_s": seconds(member.idle_ms),
                "heartbeat": heartbeat_json(member.heartbeat) if member.heartbeat else None,
            }
            for member in members
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


def _seen_ms(member: GroupMember) -> int | None:
    """When the consumer last showed a sign of life: its last beat, else the last entry served."""
    return member.heartbeat.beat_age_ms if member.heartbeat else member.idle_ms


def describe_reader(reader: ReaderInfo) -> dict[str, Any]:
    beat = reader.heartbeat
    return {
        "stream": reader.stream,
        "name": beat.name,
        "live": reader.live,
        "position": beat.position,
        "lag": reader.lag,
        "lag_capped": reader.lag_capped,
        **{key: value for key, value in heartbeat_json(beat).items() if key not in ("live", "streams")},
    }


async def run(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    streams = ctx.stream_keys(args.stream) if args.stream else ctx.bus_streams
    now_ms = await server_time_ms(redis)
    heartbeats = await read_heartbeats(redis, now_ms)
    served_within_ms = int(args.max_consumer_idle * 1000)
    groups: list[dict[str, Any]] = []
    infos = {}
    for stream in streams:
        info = await stream_info(redis, stream)
        if not info.exists:
            if args.stream:
                raise NotFound(f"stream {stream!r} does not exist")
            continue
        infos[stream] = info
        for group in await group_infos(redis, stream, info=info):
            # A sharded stream: every shard's groups (each shard has the same ones).
            if args.group is None or group.group == args.group:
                members = await group_members(redis, group, heartbeats, served_within_ms=served_within_ms)
                groups.append(await describe_group(redis, group, now_ms, members))
    if args.group is not None and not groups:
        raise NotFound(f"no consumer group {args.group!r} on {', '.join(streams)}")
    readers: list[dict[str, Any]] | None = None
    if args.group is None:
        found = await reader_infos(redis, heartbeats, streams=list(infos), infos=infos)
        readers = [describe_reader(reader) for reader in found]
    totals = group_totals(groups)
    text_out = render(groups, readers)
    if len(totals) < len(groups):
        text_out += "\n\n" + render_totals(totals)
    ctx.out.result({"now_ms": now_ms, "groups": groups, "readers": readers or [], "totals": totals}, text_out)
    return 0


def group_totals(groups: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each group's figures on a logical stream, summed over its shards (also used by `health`)."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for item in groups:
        stream = logical_stream(item["stream"])
        total = totals.setdefault(
            (stream, item["group"]),
            {
                "stream": stream,
                "group": item["group"],
                "shards": 0,
                "pending": 0,
                "lag": 0,
                "lag_capped": False,
            },
        )
        total["shards"] += 1
        total["pending"] += item["pending"]
        total["lag"] += item["lag"]
        total["lag_capped"] = total["lag_capped"] or item["lag_capped"]
    return list(totals.values())


def render_totals(totals: Sequence[dict[str, Any]]) -> str:
    return table(
        ["stream", "group", "shards", "pending", "lag"],
        [[item["stream"], item["group"], item["shards"], item["pending"], lag_text(item)] for item in totals],
    )


def lag_text(item: dict[str, Any]) -> str:
    if item["lag"] is None:
        return "-"
    return f">={item['lag']}" if item["lag_capped"] else str(item["lag"])


def ago(value: float | None) -> str:
    return "-" if value is None else f"{format_duration(value)} ago"


def _yes_no(value: bool) -> str:
    return "yes" if value else "no"


def render(groups: list[dict[str, Any]], readers: list[dict[str, Any]] | None) -> str:
    group_rows = [
        [
            item["stream"],
            item["group"],
            f"{item['live_consumers']}/{len(item['consumers'])}",
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
            _yes_no(consumer["live"]),
            consumer["pending"],
            format_duration(consumer["idle_s"]) if consumer["idle_s"] is not None else "never served",
            ago(consumer["heartbeat"]["last_beat_s"]) if consumer["heartbeat"] else "no heartbeat",
            ago(consumer["heartbeat"]["last_read_s"]) if consumer["heartbeat"] else "-",
        ]
        for item in groups
        for consumer in item["consumers"]
    ]
    sections = [
        table(
            [
                "stream",
                "group",
                "live consumers",
                "pending",
                "lag",
                "last delivered",
                "oldest pending",
                "deliveries",
            ],
            group_rows,
            empty="(no consumer groups)",
        ),
        table(
            ["stream", "group", "consumer", "live", "pending", "idle", "last beat", "last read"],
            consumer_rows,
            empty="(no consumers)",
        ),
    ]
    if readers is not None:
        sections.append(render_readers(readers))
    return "\n\n".join(sections)


def render_readers(readers: list[dict[str, Any]]) -> str:
    rows = [
        [
            item["stream"],
            item["name"],
            _yes_no(item["live"]),
            item["position"],
            lag_text(item),
            ago(item["last_beat_s"]),
            ago(item["last_read_s"]),
            f"{item['host']}:{item['pid']}",
        ]
        for item in readers
    ]
    return table(
        ["stream", "reader", "live", "position", "lag", "last beat", "last read", "host:pid"],
        rows,
        empty="(no readers)",
    )
