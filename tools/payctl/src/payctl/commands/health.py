"""`payctl health`: one screen for cron and people: services up, lag, dead letters, oldest pending,
live consumers, the notifier's readers and failed deliveries in the last hour. Exits 1 when something
needs attention.

A group needs at least one live consumer: one whose heartbeat record is recent (idle or busy), or,
for a consumer without a record, one served an entry within --max-consumer-idle. A notifier reader
needs a recent heartbeat and a lag (entries after its position when it last beat) within --max-lag."""

from __future__ import annotations

import argparse
from typing import Any

from payctl.args import duration_arg
from payctl.commands.groups import (
    ago,
    describe_group,
    describe_reader,
    group_totals,
    lag_text,
    render_readers,
    render_totals,
)
from payctl.context import Context
from payctl.deliveries import DeliveryFailures, failed_deliveries
from payctl.durations import format_duration
from payctl.errors import EXIT_ATTENTION, EXIT_OK, EXIT_UNAVAILABLE, PayctlError
from payctl.render import table
from payctl.settings import SERVICE_PORTS
from paystream.streaminfo import bus_snapshot

DELIVERY_WINDOW_S = 3600.0


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "health",
        parents=parents,
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        help="everything at a glance; exits 1 when something needs attention",
    )
    parser.add_argument(
        "--max-lag",
        type=int,
        default=1000,
        help="entries not yet delivered to a group, or not yet read by a notifier reader (1000)",
    )
    parser.add_argument(
        "--max-pending-age",
        type=duration_arg,
        default=300.0,
        metavar="DURATION",
        help="age of a group's oldest unacknowledged entry (5m)",
    )
    parser.add_argument("--max-dead-letters", type=int, default=0, help="dead letters per stream (0)")
    parser.add_argument(
        "--max-consumer-idle",
        type=duration_arg,
        default=120.0,
        metavar="DURATION",
        help="a consumer without a heartbeat counts as live when served an entry within this (2m)",
    )
    parser.add_argument(
        "--max-failed-deliveries",
        type=int,
        default=10,
        help="webhook deliveries failed in the last hour (10)",
    )
    parser.add_argument(
        "--services",
        default=",".join(SERVICE_PORTS),
        help=f"services to probe, comma-separated; empty for none ({','.join(SERVICE_PORTS)})",
    )
    parser.add_argument(
        "--timeout", type=duration_arg, default=2.0, metavar="DURATION", help="per probe (2s)"
    )
    parser.set_defaults(handler=run)


async def run(args: argparse.Namespace, ctx: Context) -> int:
    wanted = [name.strip() for name in args.services.split(",") if name.strip()]
    unknown = sorted(set(wanted) - set(ctx.settings.service_urls))
    if unknown:
        raise PayctlError(
            f"unknown service(s) {', '.join(unknown)}; known: {', '.join(SERVICE_PORTS)}",
            exit_code=EXIT_UNAVAILABLE,
        )
    redis = await ctx.stores.redis()
    snapshot = await bus_snapshot(redis, ctx.bus_streams, served_within_ms=int(args.max_consumer_idle * 1000))
    groups = [
        await describe_group(redis, group, snapshot.now_ms, members)
        for group, members in zip(snapshot.groups, snapshot.members, strict=True)
    ]
    for group in groups:
        idles = [consumer["idle_s"] for consumer in group["consumers"] if consumer["idle_s"] is not None]
        group["min_consumer_idle_s"] = min(idles) if idles else None
    readers = [describe_reader(reader) for reader in snapshot.readers]
    if ctx.settings.database_url:
        conn = await ctx.stores.database()
        deliveries = await failed_deliveries(conn, DELIVERY_WINDOW_S, ctx.settings.deliveries_table)
    else:
        deliveries = DeliveryFailures(None, None, "DATABASE_URL not set")
    # aiohttp is imported here, not at the top: it costs every other command a fifth of a second.
    from payctl.services import probe_services

    services = await probe_services({name: ctx.settings.service_urls[name] for name in wanted}, args.timeout)

    problems: list[str] = []
    for service in services:
        if service.state != "up":
            problems.append(f"service {service.name} is {service.state}: {service.detail}")
    for group in groups:
        where = f"{group['group']} on {group['stream']}"
        if group["lag"] > args.max_lag:
            problems.append(f"{where}: lag {lag_text(group)} > {args.max_lag}")
        age = group["oldest_pending_age_s"]
        if age is not None and age > args.max_pending_age:
            problems.append(
                f"{where}: oldest pending entry is {format_duration(age)} old > {format_duration(args.max_pending_age)}"
            )
        if group["live_consumers"] == 0:
            problems.append(f"{where}: no consumer seen within {format_duration(args.max_consumer_idle)}")
    for reader in readers:
        where = f"reader {reader['name']} on {reader['stream']}"
        if not reader["live"]:
            problems.append(f"{where}: silent, last heartbeat {ago(reader['last_beat_s'])}")
        elif reader["lag"] is not None and reader["lag"] > args.max_lag:
            problems.append(f"{where}: lag {lag_text(reader)} > {args.max_lag}")
    for stream, count in snapshot.dead_letters.items():
        if count > args.max_dead_letters:
            problems.append(f"{stream}: {count} dead letter(s) > {args.max_dead_letters}")
    if deliveries.count is not None and deliveries.count > args.max_failed_deliveries:
        problems.append(
            f"{deliveries.count} webhook deliveries failed in the last hour > {args.max_failed_deliveries}"
        )

    payload = {
        "status": "attention" if problems else "ok",
        "problems": problems,
        "thresholds": {
            "max_lag": args.max_lag,
            "max_pending_age_s": args.max_pending_age,
            "max_dead_letters": args.max_dead_letters,
            "max_consumer_idle_s": args.max_consumer_idle,
            "max_failed_deliveries": args.max_failed_deliveries,
        },
        "services": [
            {"name": item.name, "url": item.url, "state": item.state, "detail": item.detail}
            for item in services
        ],
        "streams": [
            {"stream": info.stream, "exists": info.exists, "length": info.length} for info in snapshot.streams
        ],
        "groups": groups,
        "group_totals": group_totals(groups),
        "readers": readers,
        "dead_letters": snapshot.dead_letters,
        "failed_deliveries": {
            "count": deliveries.count,
            "window_s": DELIVERY_WINDOW_S,
            "table": deliveries.table,
            "note": deliveries.note,
        },
    }
    ctx.out.result(payload, render(payload))
    return EXIT_ATTENTION if problems else EXIT_OK


def render(payload: dict[str, Any]) -> str:
    problems = payload["problems"]
    head = "OK" if not problems else f"ATTENTION: {len(problems)} problem(s)"
    sections = [head + "".join(f"\n  - {problem}" for problem in problems)]
    sections.append(
        table(
            ["service", "state", "url", "detail"],
            [[item["name"], item["state"], item["url"], item["detail"]] for item in payload["services"]],
            empty="(no services probed)",
        )
    )
    sections.append(
        table(
            ["stream", "group", "live consumers", "pending", "lag", "oldest pending", "last consumer seen"],
            [
                [
                    item["stream"],
                    item["group"],
                    f"{item['live_consumers']}/{len(item['consumers'])}",
                    item["pending"],
                    lag_text(item),
                    format_duration(item["oldest_pending_age_s"]) if item["oldest_pending_id"] else "-",
                    ago(item["last_consumer_seen_s"])
                    if item["last_consumer_seen_s"] is not None
                    else "never",
                ]
                for item in payload["groups"]
            ],
            empty="(no consumer groups)",
        )
    )
    if len(payload["group_totals"]) < len(payload["groups"]):
        sections.append(render_totals(payload["group_totals"]))
    sections.append(render_readers(payload["readers"]))
    sections.append(
        table(["stream", "dead letters"], [[stream, n] for stream, n in payload["dead_letters"].items()])
    )
    failures = payload["failed_deliveries"]
    figure = failures["count"] if failures["count"] is not None else "n/a"
    sections.append(f"failed webhook deliveries, last hour: {figure}  ({failures['note']})")
    return "\n\n".join(sections)
