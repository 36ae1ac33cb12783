"""`payctl tail STREAM...`: follow live events, one line each (XREAD BLOCK; no consumer group, so
tailing never takes entries from the services). A sharded stream's name follows every shard, one XREAD
per shard (one command never names two keys, which may live on different cluster nodes)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fnmatch
import signal
import sys
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from payctl.args import positive_int
from payctl.context import Context, redis_refusal
from payctl.entries import DecodedEntry, decode_entry, event_json, event_subject
from payctl.errors import EXIT_UNAVAILABLE, PayctlError
from paystream.streaminfo import is_entry_id, stream_info, text

BLOCK_MS = 1000
# Stream -> the id of the last entry seen there (redis-py's type for XREAD's argument).
StreamPositions = dict[bytes | str | memoryview, int | bytes | str | memoryview]
READ_COUNT = 100


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tail",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="follow live events, one line each",
    )
    parser.add_argument("stream", nargs="+")
    parser.add_argument(
        "--type",
        action="append",
        dest="types",
        metavar="TYPE",
        help="only these event types (globs: payment.*)",
    )
    parser.add_argument("--merchant", help="only this merchant's events")
    parser.add_argument(
        "--from",
        dest="start",
        metavar="ID",
        help="start after this entry id (0: from the beginning); default: now",
    )
    parser.add_argument("--count", type=positive_int, help="exit after printing this many events")
    parser.set_defaults(handler=run)


def matches(entry: DecodedEntry, types: list[str] | None, merchant: str | None) -> bool:
    event = entry.event
    if event is None:
        return not types and merchant is None  # malformed entries show only when nothing is filtered
    if types and not any(fnmatch.fnmatchcase(event.type.value, pattern) for pattern in types):
        return False
    return merchant is None or event.merchant_id == merchant


def render_line(stream: str, entry: DecodedEntry, *, with_stream: bool) -> str:
    prefix = f"{stream}  " if with_stream else ""
    event = entry.event
    if event is None:
        return f"{prefix}{entry.id}  (undecodable: {entry.problem})"
    occurred = event.occurred_at.strftime("%H:%M:%S.%f")[:-3]
    parts = [entry.id, occurred, event.type.value, event.merchant_id, event.invoice_id or "-"]
    subject = event_subject(event)
    if subject:
        parts.append(subject)
    parts.append(f"event={event.id}")
    return prefix + "  ".join(parts)


async def _start_ids(redis: aioredis.Redis, streams: list[str], start: str | None) -> StreamPositions:
    if start is not None:
        if not is_entry_id(start):
            raise PayctlError(f"--from must be an entry id, got {start!r}", exit_code=EXIT_UNAVAILABLE)
        return {stream: start for stream in streams}
    # Resolve "$" once: passing "$" on every read would skip entries added between two reads.
    ids: StreamPositions = {}
    for stream in streams:
        info = await stream_info(redis, stream)
        ids[stream] = info.last_generated_id or "0-0"
    return ids


async def run(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    args.stream = [key for stream in args.stream for key in ctx.stream_keys(stream)]
    try:
        positions = await _start_ids(redis, args.stream, args.start)
    except ResponseError as exc:
        raise redis_refusal(exc, stream=", ".join(args.stream)) from None
    # Ctrl-C (and SIGTERM) stop the follow loop between reads, even where the shell that started
    # payctl left SIGINT ignored (a background job's children inherit that).
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        starts = ", ".join(sorted({text(value) for value in positions.values()}))
        print(
            f"following {', '.join(args.stream)} after {starts} (Ctrl-C to stop)", file=sys.stderr, flush=True
        )
        await _follow(redis, positions, args, ctx, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    return 0


async def _follow(
    redis: aioredis.Redis,
    positions: StreamPositions,
    args: argparse.Namespace,
    ctx: Context,
    stop: asyncio.Event,
) -> None:
    shown = 0
    with_stream = len(args.stream) > 1
    while not stop.is_set():
        try:
            reply = await _read_or_stop(redis, positions, stop)
        except ResponseError as exc:
            raise redis_refusal(exc, stream=", ".join(args.stream)) from None
        for stream_name, messages in reply or []:
            stream = text(stream_name)
            for entry_id, entry_fields in messages:
                entry = decode_entry(entry_id, entry_fields)
                positions[stream] = entry.id
                if not matches(entry, args.types, args.merchant):
                    continue
                payload: dict[str, Any] = {"stream": stream, "id": entry.id}
                if entry.event is not None:
                    payload["event"] = event_json(entry.event)
                else:
                    payload["problem"] = entry.problem
                ctx.out.line(payload, render_line(stream, entry, with_stream=with_stream))
                shown += 1
                if args.count is not None and shown >= args.count:
                    return


async def _read_each(redis: aioredis.Redis, positions: StreamPositions) -> list[Any]:
    """The XREAD replies of every stream, each read on its own (concurrently), as one reply."""
    replies = await asyncio.gather(
        *(
            redis.xread({stream: position}, count=READ_COUNT, block=BLOCK_MS)
            for stream, position in positions.items()
        )
    )
    return [item for reply in replies for item in (reply or [])]


async def _read_or_stop(redis: aioredis.Redis, positions: StreamPositions, stop: asyncio.Event) -> Any:
    """One XREAD BLOCK per stream, abandoned as soon as `stop` is set; None when stopped."""
    read = asyncio.ensure_future(_read_each(redis, positions))
    stopped = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({read, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
        if not read.done():
            read.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await read
    return None if read.cancelled() else read.result()
