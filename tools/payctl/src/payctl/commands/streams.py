"""`payctl streams`: each stream's length, first and last entry with their age, groups and dead letters.

A sharded stream (STREAM_SHARDS > 1) is shown shard by shard (`payment:events:{0}`...), then summed;
naming `payment:events` names all its shards."""

from __future__ import annotations

import argparse
from typing import Any

from payctl.context import Context
from payctl.durations import format_duration
from payctl.render import table
from paystream.events import DEAD_LETTER_SUFFIX, dead_letter_stream
from paystream.shards import logical_stream
from paystream.streaminfo import entry_age_s, server_time_ms, stream_info, text


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "streams",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="streams with length, first/last entry, groups, dead letters",
    )
    parser.add_argument("stream", nargs="*", help="streams to show (default: the bus's streams)")
    parser.add_argument("--scan", action="store_true", help="also show every other stream key in Redis")
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    names: list[str] = (
        [key for stream in args.stream for key in ctx.stream_keys(stream)] if args.stream else ctx.bus_streams
    )
    if args.scan:
        async for key in redis.scan_iter(_type="STREAM", count=1000):
            name = text(key)
            if name not in names and not name.endswith(DEAD_LETTER_SUFFIX):
                names.append(name)
    now_ms = await server_time_ms(redis)
    streams: list[dict[str, Any]] = []
    for name in names:
        info = await stream_info(redis, name)
        groups = [text(group["name"]) for group in await redis.xinfo_groups(name)] if info.group_count else []
        streams.append(
            {
                "stream": name,
                "exists": info.exists,
                "length": info.length,
                "first_id": info.first_id,
                "first_age_s": _rounded(entry_age_s(info.first_id, now_ms)),
                "last_id": info.last_id,
                "last_age_s": _rounded(entry_age_s(info.last_id, now_ms)),
                "groups": groups,
                "dead_letters": int(await redis.xlen(dead_letter_stream(name))),
            }
        )
    rows = [
        [
            item["stream"] if item["exists"] else f"{item['stream']} (missing)",
            item["length"],
            item["first_id"],
            format_duration(item["first_age_s"]) if item["first_id"] else "-",
            item["last_id"],
            format_duration(item["last_age_s"]) if item["last_id"] else "-",
            item["dead_letters"],
            ", ".join(item["groups"]) or "-",
        ]
        for item in streams
    ]
    headers = ["stream", "length", "first id", "first age", "last id", "last age", "dlq", "groups"]
    totals = _totals(streams)
    text_out = table(headers, rows)
    if any(total["shards"] > 1 for total in totals):
        text_out += "\n\n" + table(
            ["stream", "shards", "length", "dlq"],
            [[total["stream"], total["shards"], total["length"], total["dead_letters"]] for total in totals],
        )
    ctx.out.result({"now_ms": now_ms, "streams": streams, "totals": totals}, text_out)
    return 0


def _totals(streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each logical stream's figures summed over its shards (see `paystream.shards`)."""
    totals: dict[str, dict[str, Any]] = {}
    for item in streams:
        total = totals.setdefault(
            logical_stream(item["stream"]),
            {"stream": logical_stream(item["stream"]), "shards": 0, "length": 0, "dead_letters": 0},
        )
        total["shards"] += 1
        total["length"] += item["length"]
        total["dead_letters"] += item["dead_letters"]
    return list(totals.values())


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)
