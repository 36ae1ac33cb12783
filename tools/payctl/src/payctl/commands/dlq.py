"""`payctl dlq list|show|replay|purge`: dead-lettered entries and what to do with them.

Replay re-publishes the original encoded event to its source stream (XADD), then deletes it from the
dead-letter stream (XDEL) unless `--keep` is given. A sharded stream (STREAM_SHARDS > 1) has a
dead-letter stream per shard (`payment:events:{i}:dlq`): naming `payment:events` acts on all of them,
and each dead letter goes back to its own shard (`payment:events:{i}`), where its payment's events are. The two writes are not one transaction (the two
streams may live on different cluster slots): a crash between them leaves the entry in both, and
replaying it again is safe because consumers are idempotent on the event id. Every group on the
source stream sees the replayed event; those that had handled it skip it through their inbox.
With OUTBOX_WAIT_REPLICAS, the XDEL waits until WAIT says that many replicas hold the replayed
entry; when they do not in time, the dead letter is kept and the replay exits 1 naming it.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from payctl.args import duration_arg, positive_int
from payctl.commands.show import entry_json, render_entry
from payctl.context import Context, redis_refusal
from payctl.durations import format_duration
from payctl.entries import DeadLetter, dlq_name
from payctl.errors import NotFound, PayctlError
from payctl.render import fields, shorten, table
from paystream.events import DEAD_LETTER_SUFFIX, entry_fields
from paystream.redis import REPLICA_WAIT_MS, xadd_held_by_replicas
from paystream.streaminfo import (
    is_entry_id,
    parse_entry_id,
    read_entries,
    read_entry,
    server_time_ms,
    text,
)

PAGE = 200


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "dlq",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="dead-lettered entries: list, show, replay, purge",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    listing = actions.add_parser("list", parents=parents, help="dead letters with their error, newest first")
    listing.add_argument("stream", nargs="?", help="a stream or its :dlq (default: every bus stream)")
    _add_filters(listing)
    listing.add_argument("--limit", type=positive_int, default=50, help="at most this many (default 50)")
    listing.set_defaults(handler=run_list)

    show = actions.add_parser("show", parents=parents, help="one dead letter, decoded, with its full error")
    show.add_argument("stream", help="the stream or its :dlq")
    show.add_argument("id", help="the dead letter's id (on the :dlq stream)")
    show.set_defaults(handler=run_show)

    replay = actions.add_parser(
        "replay",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="put dead letters back on their source stream",
    )
    replay.add_argument("stream", help="the stream or its :dlq")
    replay.add_argument("ids", nargs="*", metavar="ID", help="dead letters to replay")
    replay.add_argument("--all", action="store_true", help="every dead letter that matches the filters")
    _add_filters(replay)
    replay.add_argument("--keep", action="store_true", help="leave them in the dead-letter stream too")
    replay.add_argument("--dry-run", action="store_true", help="show what would be replayed")
    replay.set_defaults(handler=run_replay)

    purge = actions.add_parser("purge", parents=parents, help="delete dead letters")
    purge.add_argument("stream", help="the stream or its :dlq")
    purge.add_argument("ids", nargs="*", metavar="ID", help="dead letters to delete")
    purge.add_argument("--all", action="store_true", help="every dead letter that matches the filters")
    purge.add_argument(
        "--older-than", type=duration_arg, metavar="DURATION", help="only those that failed this long ago"
    )
    _add_filters(purge)
    purge.add_argument("--dry-run", action="store_true", help="show what would be deleted")
    purge.set_defaults(handler=run_purge)


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--group", help="only dead letters of this consumer group")
    parser.add_argument("--type", dest="event_type", help="only this event type")


def _matches(letter: DeadLetter, args: argparse.Namespace, now_ms: int) -> bool:
    if args.group is not None and letter.group != args.group:
        return False
    if args.event_type is not None and letter.event_type != args.event_type:
        return False
    older_than = getattr(args, "older_than", None)
    if older_than is not None:
        age = letter.failed_age_s(now_ms)
        if age is None or age < older_than:
            return False
    return True


async def _scan(redis: aioredis.Redis, dlq: str, *, newest_first: bool) -> AsyncIterator[DeadLetter]:
    """Every dead letter of one :dlq stream, in pages."""
    low, high = "-", "+"
    while True:
        page = await read_entries(redis, dlq, low=low, high=high, count=PAGE, newest_first=newest_first)
        for entry_id, raw_fields in page:
            yield DeadLetter.from_entry(dlq, entry_id, raw_fields)
        if len(page) < PAGE:
            return
        if newest_first:
            high = f"({page[-1][0]}"
        else:
            low = f"({page[-1][0]}"


async def _selected(
    redis: aioredis.Redis, dlqs: list[str], args: argparse.Namespace, now_ms: int
) -> tuple[list[DeadLetter], list[dict[str, str]]]:
    """The dead letters named by id (missing ones reported) or, with --all, every match, oldest first
    within each dead-letter stream (a sharded stream has one per shard; an id is on one of them)."""
    if args.ids:
        letters, missing = [], []
        for entry_id in args.ids:
            for dlq in dlqs:
                found = await read_entry(redis, dlq, entry_id) if is_entry_id(entry_id) else None
                if found is not None:
                    letters.append(DeadLetter.from_entry(dlq, *found))
                    break
            else:
                missing.append({"dlq_id": entry_id, "reason": f"not on {', '.join(dlqs)}"})
        return [letter for letter in letters if _matches(letter, args, now_ms)], missing
    if not args.all and getattr(args, "older_than", None) is None:
        raise PayctlError("name the dead letters to act on, or pass --all", exit_code=2)
    return [
        letter
        for dlq in dlqs
        async for letter in _scan(redis, dlq, newest_first=False)
        if _matches(letter, args, now_ms)
    ], []


async def run_list(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    streams = ctx.stream_keys(args.stream) if args.stream else ctx.bus_streams
    dlqs = [dlq_name(stream) for stream in streams]
    now_ms = await server_time_ms(redis)
    total = 0
    letters: list[DeadLetter] = []
    try:
        for dlq in dlqs:
            total += int(await redis.xlen(dlq))
            found = 0
            async for letter in _scan(redis, dlq, newest_first=True):
                if found >= args.limit:
                    break
                if _matches(letter, args, now_ms):
                    letters.append(letter)
                    found += 1
    except ResponseError as exc:
        raise redis_refusal(exc, stream=", ".join(dlqs)) from None
    # Newest first across every dead-letter stream (their ids are times).
    letters.sort(key=lambda letter: parse_entry_id(letter.id), reverse=True)
    del letters[args.limit :]
    rows = [letter.to_json(now_ms) for letter in letters]
    text_out = table(
        ["dlq id", "source", "source id", "group", "type", "deliveries", "failed", "error"],
        [
            [
                row["id"],
                row["source_stream"],
                row["source_id"],
                row["group"],
                row["event_type"],
                row["deliveries"],
                format_duration(row["failed_age_s"]) + " ago" if row["failed_age_s"] is not None else "-",
                shorten(row["error"]),
            ]
            for row in rows
        ],
        empty="(no dead letters)",
    )
    where = dlqs[0] if len(dlqs) == 1 else f"{len(dlqs)} dead-letter streams"
    text_out += f"\n\n{len(rows)} shown, {total} dead letter(s) in {where}"
    ctx.out.result({"total": total, "dead_letters": rows}, text_out)
    return 0


async def run_show(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    dlqs = [dlq_name(stream) for stream in ctx.stream_keys(args.stream)]
    found = None
    for dlq in dlqs:  # a sharded stream's: the id is on one of them
        try:
            found = await read_entry(redis, dlq, args.id) if is_entry_id(args.id) else None
        except ResponseError as exc:
            raise redis_refusal(exc, stream=dlq) from None
        if found is not None:
            break
    if found is None:
        raise NotFound(f"no dead letter {args.id} on {', '.join(dlqs)}")
    now_ms = await server_time_ms(redis)
    letter = DeadLetter.from_entry(dlq, *found)
    payload = {**entry_json(dlq, letter.entry, now_ms), "dead_letter": letter.to_json(now_ms)}
    ctx.out.result(payload, render_entry(payload))
    return 0


async def run_replay(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    dlqs = [dlq_name(stream) for stream in ctx.stream_keys(args.stream)]
    dlq = ", ".join(dlqs)
    now_ms = await server_time_ms(redis)
    try:
        letters, skipped = await _selected(redis, dlqs, args, now_ms)
        replayed = []
        for letter in letters:
            raw = letter.entry.raw_event
            if raw is None:
                skipped.append({"dlq_id": letter.id, "reason": "it carries no event to replay"})
                continue
            if letter.source_stream.endswith(DEAD_LETTER_SUFFIX):
                skipped.append({"dlq_id": letter.id, "reason": f"bad source stream {letter.source_stream!r}"})
                continue
            new_id = None
            if not args.dry_run:
                added, held = await xadd_held_by_replicas(
                    redis,
                    letter.source_stream,
                    entry_fields(raw, letter.entry.sequence),
                    maxlen=ctx.settings.stream_maxlen,
                    wanted=ctx.settings.wait_replicas,
                )
                new_id = text(added)
                if not held:
                    skipped.append(
                        {
                            "dlq_id": letter.id,
                            "reason": f"replayed as {new_id}, but fewer than {ctx.settings.wait_replicas}"
                            f" replica(s) confirmed it within {REPLICA_WAIT_MS} ms: the dead letter is"
                            " kept (replaying it again is absorbed by event id)",
                        }
                    )
                elif not args.keep:
                    await redis.xdel(letter.dlq, letter.id)
            replayed.append(
                {
                    "dlq_id": letter.id,
                    "source_stream": letter.source_stream,
                    "source_id": letter.source_id,
                    "new_id": new_id,
                    "event_id": letter.entry.event.id if letter.entry.event else None,
                    "event_type": letter.event_type,
                }
            )
    except ResponseError as exc:
        raise redis_refusal(exc, stream=dlq) from None
    payload = {
        "dlq": dlq,
        "dry_run": args.dry_run,
        "kept": args.keep,
        "replayed": replayed,
        "skipped": skipped,
    }
    verb = "would replay" if args.dry_run else "replayed"
    text_out = f"{verb} {len(replayed)} dead letter(s) from {dlq}"
    if replayed:
        text_out += "\n\n" + table(
            ["dlq id", "to stream", "new id", "type"],
            [[row["dlq_id"], row["source_stream"], row["new_id"], row["event_type"]] for row in replayed],
        )
    if skipped:
        text_out += "\n\nskipped:\n" + fields([(row["dlq_id"], row["reason"]) for row in skipped])
    ctx.out.result(payload, text_out)
    return 1 if skipped else 0


async def run_purge(args: argparse.Namespace, ctx: Context) -> int:
    redis = await ctx.stores.redis()
    dlqs = [dlq_name(stream) for stream in ctx.stream_keys(args.stream)]
    dlq = ", ".join(dlqs)
    now_ms = await server_time_ms(redis)
    try:
        letters, skipped = await _selected(redis, dlqs, args, now_ms)
        ids = [letter.id for letter in letters]
        if ids and not args.dry_run:
            for shard_dlq in dlqs:  # one key per XDEL: the shards live on different slots
                own = [letter.id for letter in letters if letter.dlq == shard_dlq]
                for start in range(0, len(own), PAGE):
                    await redis.xdel(shard_dlq, *own[start : start + PAGE])
    except ResponseError as exc:
        raise redis_refusal(exc, stream=dlq) from None
    payload = {"dlq": dlq, "dry_run": args.dry_run, "purged": ids, "count": len(ids), "skipped": skipped}
    text_out = f"{'would delete' if args.dry_run else 'deleted'} {len(ids)} dead letter(s) from {dlq}"
    if skipped:
        text_out += "\n\nskipped:\n" + fields([(row["dlq_id"], row["reason"]) for row in skipped])
    ctx.out.result(payload, text_out)
    return 1 if skipped else 0
