"""`payctl show STREAM ID`: one entry, decoded, with where each group stands on it."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

import orjson
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from payctl.context import Context, redis_refusal, seconds
from payctl.durations import format_duration
from payctl.entries import DeadLetter, DecodedEntry, decode_entry, event_json
from payctl.errors import NotFound
from payctl.render import fields
from paystream.events import DEAD_LETTER_SUFFIX
from paystream.streaminfo import (
    RawEntry,
    entry_age_s,
    is_entry_id,
    parse_entry_id,
    pending_entry,
    read_entry,
    server_time_ms,
    text,
)


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "show",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="one stream entry, decoded",
    )
    parser.add_argument("stream")
    parser.add_argument("id")
    parser.set_defaults(handler=run)


async def fetch_entry(redis: aioredis.Redis, stream: str, entry_id: str) -> RawEntry:
    """The entry's (id, fields); NotFound when it is not (or no longer) on the stream."""
    if not is_entry_id(entry_id):
        raise NotFound(f"{entry_id!r} is not a stream entry id (like 1714550400000-0)")
    try:
        found = await read_entry(redis, stream, entry_id)
    except ResponseError as exc:
        raise redis_refusal(exc, stream=stream) from None
    if found is None:
        raise NotFound(f"no entry {entry_id} on {stream}")
    return found


async def group_states(redis: aioredis.Redis, stream: str, entry_id: str) -> list[dict[str, Any]]:
    """For each group of the stream: pending (with whom), acknowledged, or not delivered yet."""
    states = []
    for group in await redis.xinfo_groups(stream):
        name = text(group["name"])
        pending = await pending_entry(redis, stream, name, entry_id)
        if pending is not None:
            states.append(
                {
                    "group": name,
                    "state": "pending",
                    "consumer": pending.consumer,
                    "deliveries": pending.deliveries,
                    "idle_s": seconds(pending.idle_ms),
                }
            )
            continue
        delivered = parse_entry_id(entry_id) <= parse_entry_id(text(group["last-delivered-id"]))
        states.append({"group": name, "state": "acknowledged" if delivered else "not delivered"})
    return states


def entry_json(stream: str, entry: DecodedEntry, now_ms: int) -> dict[str, Any]:
    age = entry_age_s(entry.id, now_ms)
    return {
        "stream": stream,
        "id": entry.id,
        "age_s": None if age is None else round(age, 3),
        "event": event_json(entry.event) if entry.event else None,
        "problem": entry.problem,
        "fields": entry.extra,
    }


def render_entry(payload: dict[str, Any]) -> str:
    event = payload["event"] or {}
    lines: list[tuple[str, Any]] = [
        ("stream", payload["stream"]),
        ("entry", payload["id"]),
        ("age", format_duration(payload["age_s"])),
    ]
    if event:
        lines += [
            ("event id", event["id"]),
            ("type", event["type"]),
            ("version", event["version"]),
            ("occurred at", event["occurred_at"]),
            ("merchant", event["merchant_id"]),
            ("salon", event["salon_id"]),
            ("invoice", event["invoice_id"]),
        ]
    else:
        lines.append(("problem", payload["problem"]))
    lines += [(key, _readable(key, value)) for key, value in payload["fields"].items()]
    for state in payload.get("groups", []):
        detail = state["state"]
        if state["state"] == "pending":
            detail += f" ({state['consumer']}, {state['deliveries']} deliveries)"
        lines.append((f"group {state['group']}", detail))
    text_out = fields(lines)
    if event:
        text_out += "\ndata:\n" + orjson.dumps(event["data"], option=orjson.OPT_INDENT_2).decode()
    return text_out


def _readable(key: str, value: str) -> str:
    """A dead letter's `failed_at` (epoch milliseconds) as a time; anything else as it is."""
    if key == "failed_at" and value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC).isoformat(timespec="milliseconds")
    return value


async def run(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    entry_id, entry_fields = await fetch_entry(redis, args.stream, args.id)
    now_ms = await server_time_ms(redis)
    entry = decode_entry(entry_id, entry_fields)
    payload = entry_json(args.stream, entry, now_ms)
    payload["groups"] = await group_states(redis, args.stream, entry.id)
    if args.stream.endswith(DEAD_LETTER_SUFFIX):
        payload["dead_letter"] = DeadLetter.from_entry(args.stream, entry_id, entry_fields).to_json(now_ms)
    ctx.out.result(payload, render_entry(payload))
    return 0
