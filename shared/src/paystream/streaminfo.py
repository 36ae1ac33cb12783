"""Read-only views of the event bus: streams, consumer groups, consumers and pending entries.

`payctl` prints them and every service's `/metrics` exports them (`BusMetrics`, refreshed at scrape
time and cached for a second). Nothing here writes to Redis.

Lag is the number of entries a group has not been delivered yet. Redis 7 reports it in XINFO GROUPS;
older servers (and Redis 7 after some trims or deletions) do not, so it is then counted server-side
from the group's last delivered id, up to a cap: a lag at the cap reads "at least that many".

Who is alive comes from the heartbeat records (`paystream.heartbeat`), joined with XINFO CONSUMERS:
a group member with a record is live while its record beats; a member without one (a reader outside
the consumer runtime) is live when Redis served it an entry within `SERVED_WITHIN_MS`. A notifier
reader's lag is the number of entries after its published position that were in the stream when it
last beat: entries added since its last beat are not held against it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import redis.asyncio as aioredis
import structlog
from redis.exceptions import ResponseError

from paystream.db import DATABASE_UNAVAILABLE_ERRORS, Connection
from paystream.events import Stream, dead_letter_stream
from paystream.heartbeat import HeartbeatStatus, ReaderKind, read_heartbeats
from paystream.metrics import (
    BUS_METRICS_UP,
    DEAD_LETTERS,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_UNPUBLISHED,
    PROVIDER_EVENTS_FAILED,
    PROVIDER_EVENTS_OLDEST_WAITING,
    PROVIDER_EVENTS_WAITING,
    READER_LAG,
    READER_LAST_SEEN,
    READER_LIVE,
    STREAM_CONSUMERS,
    STREAM_LAG,
    STREAM_LENGTH,
    STREAM_LIVE_CONSUMERS,
    STREAM_OLDEST_PENDING,
    STREAM_PENDING,
)
from paystream.redis import REDIS_UNAVAILABLE_ERRORS
from paystream.shards import SINGLE_SHARD, StreamLayout, logical_stream

log = structlog.get_logger(__name__)

# Redis unreachable, or a command refused (a key of the wrong type, say).
_REDIS_READ_FAILURES: tuple[type[BaseException], ...] = (*REDIS_UNAVAILABLE_ERRORS, ResponseError)
_DATABASE_READ_FAILURES: tuple[type[BaseException], ...] = (
    *DATABASE_UNAVAILABLE_ERRORS,
    asyncpg.PostgresError,
)

# The streams of the bus, in the order operators read them (unsharded: see `bus_streams`).
BUS_STREAMS: tuple[str, ...] = tuple(stream.value for stream in Stream)


def bus_streams(layout: StreamLayout = SINGLE_SHARD) -> tuple[str, ...]:
    """The stream keys of the bus: every shard of every stream (`BUS_STREAMS` when unsharded)."""
    return layout.bus_keys()


LAG_COUNT_CAP = 100_000
# A group member without a heartbeat record counts as live when it was served an entry this recently
# (`payctl health --max-consumer-idle`'s default).
SERVED_WITHIN_MS = 120_000

# Counts the entries after an id (exclusive) up to an end id (inclusive) in pages, so the script's
# memory stays bounded.
_COUNT_AFTER_SCRIPT = """
local start = ARGV[1]
local cap = tonumber(ARGV[2])
local stop = ARGV[3] or '+'
local total = 0
while total < cap do
  local want = math.min(1000, cap - total)
  local page = redis.call('XRANGE', KEYS[1], start, stop, 'COUNT', want)
  local n = #page
  total = total + n
  if n < want then break end
  start = '(' .. page[n][1]
end
return total
"""


def text(value: Any) -> str:
    """A Redis reply value (bytes or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)


def parse_entry_id(entry_id: str) -> tuple[int, int]:
    """`"<ms>-<seq>"` as a tuple that orders like Redis orders ids; ValueError when malformed."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def is_entry_id(value: str) -> bool:
    try:
        parse_entry_id(value)
    except ValueError:
        return False
    return True


def entry_ms(entry_id: str) -> int:
    """The millisecond timestamp an auto-generated entry id carries."""
    return parse_entry_id(entry_id)[0]


def entry_age_s(entry_id: str | None, now_ms: int) -> float | None:
    if entry_id is None:
        return None
    return max(0.0, (now_ms - entry_ms(entry_id)) / 1000)


async def server_time_ms(redis: aioredis.Redis) -> int:
    """Redis's clock: entry ids carry it, so ages computed against it ignore local clock skew."""
    seconds, micros = await redis.time()
    return int(seconds) * 1000 + int(micros) // 1000


# An entry as read from a stream: its id and its fields.
RawEntry = tuple[str, dict[bytes, bytes]]


async def read_entries(
    redis: aioredis.Redis,
    stream: str,
    *,
    low: str = "-",
    high: str = "+",
    count: int = 100,
    newest_first: bool = False,
) -> list[RawEntry]:
    """Entries between `low` and `high` (prefix `(` for exclusive), oldest or newest first."""
    reply: Any
    if newest_first:
        reply = await redis.xrevrange(stream, max=high, min=low, count=count)
    else:
        reply = await redis.xrange(stream, min=low, max=high, count=count)
    return [(text(entry_id), dict(fields)) for entry_id, fields in reply or []]


async def read_entry(redis: aioredis.Redis, stream: str, entry_id: str) -> RawEntry | None:
    """One entry by id; None when it is not (or no longer) on the stream."""
    entries = await read_entries(redis, stream, low=entry_id, high=entry_id, count=1)
    return entries[0] if entries else None


@dataclass(frozen=True, slots=True)
class StreamInfo:
    stream: str
    exists: bool
    length: int
    first_id: str | None
    last_id: str | None
    last_generated_id: str | None
    group_count: int


@dataclass(frozen=True, slots=True)
class GroupInfo:
    stream: str
    group: str
    consumers: int
    pending: int
    last_delivered_id: str
    lag: int
    # True when the lag was counted up to the cap and there may be more.
    lag_capped: bool
    oldest_pending_id: str | None


@dataclass(frozen=True, slots=True)
class ConsumerInfo:
    name: str
    pending: int
    idle_ms: int


@dataclass(frozen=True, slots=True)
class PendingEntry:
    id: str
    consumer: str
    idle_ms: int
    deliveries: int


async def stream_info(redis: aioredis.Redis, stream: str) -> StreamInfo:
    try:
        info = await redis.xinfo_stream(stream)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return StreamInfo(stream, False, 0, None, None, None, 0)
    first, last = info.get("first-entry"), info.get("last-entry")
    return StreamInfo(
        stream=stream,
        exists=True,
        length=int(info["length"]),
        first_id=text(first[0]) if first else None,
        last_id=text(last[0]) if last else None,
        last_generated_id=text(info["last-generated-id"]),
        group_count=int(info["groups"]),
    )


async def dead_letter_counts(redis: aioredis.Redis, streams: Sequence[str]) -> dict[str, int]:
    """The length of each stream's dead-letter stream."""
    async with redis.pipeline(transaction=False) as pipe:
        for stream in streams:
            pipe.xlen(dead_letter_stream(stream))
        lengths = await pipe.execute()
    return {stream: int(length) for stream, length in zip(streams, lengths, strict=True)}


async def count_after(
    redis: aioredis.Redis, stream: str, after_id: str, cap: int, *, upto: str = "+"
) -> tuple[int, bool]:
    """How many entries follow `after_id` (exclusive), up to `upto` (inclusive; a bare `<ms>` means
    the last id of that millisecond), counted up to `cap`; (count, capped)."""
    counted = int(await redis.eval(_COUNT_AFTER_SCRIPT, 1, stream, f"({after_id}", str(cap), upto))
    return counted, counted >= cap


async def entries_behind(
    redis: aioredis.Redis, info: StreamInfo, position: str, cap: int, *, upto_ms: int | None = None
) -> tuple[int, bool]:
    """Entries of the stream after `position` (and no later than `upto_ms`), without a scan when
    the ids alone answer; (count, capped). ValueError when `position` is not an entry id."""
    after = parse_entry_id(position)
    if info.last_id is None or after >= parse_entry_id(info.last_id):
        return 0, False
    upto = "+" if upto_ms is None else str(upto_ms)
    if upto_ms is not None and after >= (upto_ms, 2**64 - 1):
        return 0, False
    if upto_ms is None and info.first_id is not None and after < parse_entry_id(info.first_id):
        return info.length, False  # nothing left in the stream has been read
    return await count_after(redis, info.stream, position, cap, upto=upto)


async def group_infos(
    redis: aioredis.Redis, stream: str, *, lag_cap: int = LAG_COUNT_CAP, info: StreamInfo | None = None
) -> list[GroupInfo]:
    """Every group of `stream` with its pending count, lag and oldest pending id."""
    try:
        groups = await redis.xinfo_groups(stream)
    except ResponseError as exc:
        if "no such key" not in str(exc).lower():
            raise
        return []
    if not groups:
        return []
    if info is None:
        info = await stream_info(redis, stream)
    async with redis.pipeline(transaction=False) as pipe:
        for group in groups:
            pipe.xpending(stream, text(group["name"]))
        summaries = await pipe.execute()
    result = []
    for group, summary in zip(groups, summaries, strict=True):
        name = text(group["name"])
        last_delivered = text(group["last-delivered-id"])
        lag, capped = await _group_lag(redis, info, group, last_delivered, lag_cap)
        oldest = summary.get("min") if summary.get("pending") else None
        result.append(
            GroupInfo(
                stream=stream,
                group=name,
                consumers=int(group["consumers"]),
                pending=int(group["pending"]),
                last_delivered_id=last_delivered,
                lag=lag,
                lag_capped=capped,
                oldest_pending_id=text(oldest) if oldest else None,
            )
        )
    return result


async def _group_lag(
    redis: aioredis.Redis, info: StreamInfo, group: dict[str, Any], last_delivered: str, cap: int
) -> tuple[int, bool]:
    if info.last_generated_id is not None and parse_entry_id(last_delivered) >= parse_entry_id(
        info.last_generated_id
    ):
        # Delivered up to the newest id: nothing is waiting, whatever the estimate says (Redis 7
        # derives its lag from counters that a failover or a re-published batch can leave behind).
        return 0, False
    reported = group.get("lag")
    if reported is not None:  # Redis 7 knows it
        return int(reported), False
    return await entries_behind(redis, info, last_delivered, cap)


async def consumer_infos(redis: aioredis.Redis, stream: str, group: str) -> list[ConsumerInfo]:
    consumers = await redis.xinfo_consumers(stream, group)
    return [
        ConsumerInfo(name=text(item["name"]), pending=int(item["pending"]), idle_ms=int(item["idle"]))
        for item in consumers
    ]


@dataclass(frozen=True, slots=True)
class GroupMember:
    """A consumer of a group, as XINFO CONSUMERS and its heartbeat record describe it."""

    name: str
    # Unacknowledged entries delivered to it; 0 when Redis does not list it.
    pending: int
    # Since Redis last served it an entry; None when Redis does not list it (Redis 6.2 lists a
    # consumer only once it has been served one).
    idle_ms: int | None
    heartbeat: HeartbeatStatus | None
    live: bool


async def group_members(
    redis: aioredis.Redis,
    group: GroupInfo,
    heartbeats: Sequence[HeartbeatStatus],
    *,
    served_within_ms: int = SERVED_WITHIN_MS,
) -> list[GroupMember]:
    """The group's consumers by name: those Redis lists and those whose heartbeat names the group."""
    listed = {item.name: item for item in await consumer_infos(redis, group.stream, group.group)}
    beating = {
        beat.name: beat
        for beat in heartbeats
        if beat.kind is ReaderKind.CONSUMER and beat.group == group.group and beat.reads(group.stream)
    }
    members = []
    for name in sorted({*listed, *beating}):
        consumer, beat = listed.get(name), beating.get(name)
        idle_ms = consumer.idle_ms if consumer else None
        # A record, once there, is the judge: a dead consumer's XINFO idle says nothing for minutes.
        live = beat.live if beat else idle_ms is not None and idle_ms <= served_within_ms
        members.append(
            GroupMember(name, consumer.pending if consumer else 0, idle_ms, beat, live),
        )
    return members


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    """A stream reader outside any group (a notifier process) and how far behind it is."""

    stream: str
    heartbeat: HeartbeatStatus
    # Entries after its position that were in the stream at its last beat; None when it published
    # no readable position.
    lag: int | None
    lag_capped: bool

    @property
    def live(self) -> bool:
        return self.heartbeat.live


async def reader_infos(
    redis: aioredis.Redis,
    heartbeats: Sequence[HeartbeatStatus],
    *,
    streams: Sequence[str] | None = None,
    lag_cap: int = LAG_COUNT_CAP,
    infos: dict[str, StreamInfo] | None = None,
) -> list[ReaderInfo]:
    """Every reader heartbeat (of `streams`, when given) with its lag as of its last beat."""
    infos = dict(infos or {})
    readers = []
    for beat in heartbeats:
        if beat.kind is not ReaderKind.READER:
            continue
        for stream in beat.streams:
            if streams is not None and stream not in streams:
                continue
            if stream not in infos:
                infos[stream] = await stream_info(redis, stream)
            lag: int | None = None
            capped = False
            if beat.position is not None and is_entry_id(beat.position):
                lag, capped = await entries_behind(
                    redis, infos[stream], beat.position, lag_cap, upto_ms=beat.beat_redis_ms
                )
            readers.append(ReaderInfo(stream, beat, lag, capped))
    return readers


async def pending_entries(
    redis: aioredis.Redis,
    stream: str,
    group: str,
    *,
    min_idle_ms: int | None = None,
    consumer: str | None = None,
    start: str = "-",
    count: int = 100,
) -> list[PendingEntry]:
    """The group's pending entries in id order (XPENDING extended form)."""
    rows = await redis.xpending_range(
        stream, group, min=start, max="+", count=count, consumername=consumer, idle=min_idle_ms
    )
    return [
        PendingEntry(
            id=text(row["message_id"]),
            consumer=text(row["consumer"]),
            idle_ms=int(row["time_since_delivered"]),
            deliveries=int(row["times_delivered"]),
        )
        for row in rows
    ]


async def pending_entry(redis: aioredis.Redis, stream: str, group: str, entry_id: str) -> PendingEntry | None:
    entries = await redis.xpending_range(stream, group, min=entry_id, max=entry_id, count=1)
    if not entries:
        return None
    row = entries[0]
    return PendingEntry(
        id=text(row["message_id"]),
        consumer=text(row["consumer"]),
        idle_ms=int(row["time_since_delivered"]),
        deliveries=int(row["times_delivered"]),
    )


# -- metrics ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BusSnapshot:
    now_ms: int
    streams: list[StreamInfo]
    groups: list[GroupInfo]
    dead_letters: dict[str, int]
    # Each group's members, in the order of `groups`.
    members: list[list[GroupMember]]
    readers: list[ReaderInfo]


async def bus_snapshot(
    redis: aioredis.Redis,
    streams: Iterable[str] = BUS_STREAMS,
    *,
    lag_cap: int = LAG_COUNT_CAP,
    served_within_ms: int = SERVED_WITHIN_MS,
) -> BusSnapshot:
    """Everything the metrics and `payctl health` need about the bus, in a handful of round trips."""
    names = list(streams)
    now_ms = await server_time_ms(redis)
    infos = [await stream_info(redis, stream) for stream in names]
    groups: list[GroupInfo] = []
    for info in infos:
        if info.exists and info.group_count:
            groups.extend(await group_infos(redis, info.stream, lag_cap=lag_cap, info=info))
    heartbeats = await read_heartbeats(redis, now_ms)
    members = [
        await group_members(redis, group, heartbeats, served_within_ms=served_within_ms) for group in groups
    ]
    readers = await reader_infos(
        redis, heartbeats, streams=names, lag_cap=lag_cap, infos={info.stream: info for info in infos}
    )
    return BusSnapshot(now_ms, infos, groups, await dead_letter_counts(redis, names), members, readers)


def _earliest(ids: Iterable[str | None]) -> str | None:
    present = [entry_id for entry_id in ids if entry_id is not None]
    return min(present, key=parse_entry_id) if present else None


def _latest(ids: Iterable[str | None]) -> str | None:
    present = [entry_id for entry_id in ids if entry_id is not None]
    return max(present, key=parse_entry_id) if present else None


def summed_over_shards(snapshot: BusSnapshot) -> BusSnapshot:
    """The snapshot per logical stream: each figure summed over the stream's shards (lengths, lags,
    pending entries, dead letters, a reader's lag), a consumer or reader live when it is on every
    shard it reads, the oldest pending entry the oldest of any shard. Entry ids of different shards
    come from different servers' clocks; the earliest and latest of them are shown as they are."""
    streams: dict[str, list[StreamInfo]] = {}
    for info in snapshot.streams:
        streams.setdefault(logical_stream(info.stream), []).append(info)
    merged_streams = [
        StreamInfo(
            stream=name,
            exists=any(info.exists for info in infos),
            length=sum(info.length for info in infos),
            first_id=_earliest(info.first_id for info in infos),
            last_id=_latest(info.last_id for info in infos),
            last_generated_id=_latest(info.last_generated_id for info in infos),
            group_count=max(info.group_count for info in infos),
        )
        for name, infos in streams.items()
    ]
    groups: dict[tuple[str, str], list[tuple[GroupInfo, list[GroupMember]]]] = {}
    for group, members in zip(snapshot.groups, snapshot.members, strict=True):
        groups.setdefault((logical_stream(group.stream), group.group), []).append((group, members))
    merged_groups: list[GroupInfo] = []
    merged_members: list[list[GroupMember]] = []
    for (name, group_name), shards in groups.items():
        infos = [group for group, _ in shards]
        merged_groups.append(
            GroupInfo(
                stream=name,
                group=group_name,
                consumers=max(info.consumers for info in infos),
                pending=sum(info.pending for info in infos),
                last_delivered_id=_latest(info.last_delivered_id for info in infos) or "0-0",
                lag=sum(info.lag for info in infos),
                lag_capped=any(info.lag_capped for info in infos),
                oldest_pending_id=_earliest(info.oldest_pending_id for info in infos),
            )
        )
        by_name: dict[str, list[GroupMember]] = {}
        for _, members in shards:
            for member in members:
                by_name.setdefault(member.name, []).append(member)
        merged_members.append(
            [
                GroupMember(
                    name=member_name,
                    pending=sum(member.pending for member in found),
                    idle_ms=min((m.idle_ms for m in found if m.idle_ms is not None), default=None),
                    heartbeat=next((m.heartbeat for m in found if m.heartbeat is not None), None),
                    live=all(member.live for member in found),
                )
                for member_name, found in sorted(by_name.items())
            ]
        )
    readers: dict[tuple[str, str], list[ReaderInfo]] = {}
    for reader in snapshot.readers:
        readers.setdefault((logical_stream(reader.stream), reader.heartbeat.name), []).append(reader)
    merged_readers = []
    for (name, _reader_name), found in readers.items():
        lags = [reader.lag for reader in found]
        merged_readers.append(
            ReaderInfo(
                stream=name,
                # The stalest shard's record: a reader is as live as its least live shard.
                heartbeat=max((reader.heartbeat for reader in found), key=lambda beat: beat.beat_age_ms),
                lag=None if any(lag is None for lag in lags) else sum(lag or 0 for lag in lags),
                lag_capped=any(reader.lag_capped for reader in found),
            )
        )
    dead_letters: dict[str, int] = {}
    for stream, count in snapshot.dead_letters.items():
        dead_letters[logical_stream(stream)] = dead_letters.get(logical_stream(stream), 0) + count
    return BusSnapshot(
        snapshot.now_ms, merged_streams, merged_groups, dead_letters, merged_members, merged_readers
    )


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    """Committed events not yet published to their streams."""

    # Counted up to `cap`: at the cap it reads "at least that many".
    unpublished: int
    capped: bool
    # Age of the oldest unpublished event; 0 when there is none.
    oldest_age_s: float


async def outbox_backlog(pool: asyncpg.Pool, *, cap: int = LAG_COUNT_CAP) -> OutboxBacklog:
    """The outbox's backlog (the metrics' and the dashboard's): two index reads, however large it is."""
    row = await pool.fetchrow(
        """SELECT
             (SELECT count(*) FROM (SELECT 1 FROM outbox_pending LIMIT $1) AS unpublished) AS backlog,
             (SELECT extract(epoch FROM now() - o.created_at)::float8
              FROM outbox_pending AS p JOIN outbox AS o USING (id)
              ORDER BY p.id LIMIT 1) AS oldest_s""",
        cap,
    )
    assert row is not None
    return OutboxBacklog(int(row["backlog"]), int(row["backlog"]) >= cap, max(0.0, row["oldest_s"] or 0.0))


@dataclass(frozen=True, slots=True)
class ProviderEventBacklog:
    """Stored provider events waiting for a processor, and those that ended `failed`."""

    # Both counted up to `cap`.
    waiting: int
    oldest_age_s: float
    failed: int


async def provider_event_backlog(
    pool: asyncpg.Pool | Connection, *, cap: int = LAG_COUNT_CAP
) -> ProviderEventBacklog:
    """Three reads of the partial indexes on waiting and failed rows, however long the backlog."""
    row = await pool.fetchrow(
        """SELECT
             (SELECT count(*) FROM (SELECT 1 FROM provider_events WHERE status = 'received'
                                    LIMIT $1) AS w) AS waiting,
             (SELECT extract(epoch FROM now() - min(received_at))::float8 FROM provider_events
              WHERE status = 'received') AS oldest_s,
             (SELECT count(*) FROM (SELECT 1 FROM provider_events WHERE status = 'failed'
                                    LIMIT $1) AS f) AS failed""",
        cap,
    )
    assert row is not None
    return ProviderEventBacklog(int(row["waiting"]), max(0.0, row["oldest_s"] or 0.0), int(row["failed"]))


class BusMetrics:
    """Stream, outbox and provider-event gauges computed when `/metrics` is scraped, at most once
    per `max_age_s`.

    Every service exports the whole bus (any live service is enough to see it); dashboards aggregate
    with `max by (stream, group)`. A read that fails sets `paystream_bus_metrics_up{source}` to 0 and
    drops the stale series rather than exporting old figures as current.
    """

    def __init__(self, *, max_age_s: float = 1.0, timeout_s: float = 2.0, lag_cap: int = 10_000) -> None:
        self._max_age_s = max_age_s
        self._timeout_s = timeout_s
        self._lag_cap = lag_cap
        self._refreshed_at: float | None = None
        self._lock = asyncio.Lock()

    async def refresh(
        self, redis: aioredis.Redis | None, pool: asyncpg.Pool | None, streams: Sequence[str] = BUS_STREAMS
    ) -> None:
        """`streams`: the stream keys (every shard, see `bus_streams`). Each shard is its own series
        (`stream="payment:events:{0}"`...): `sum by (group)` gives a group's whole lag, and the alerts'
        `max by (stream, group)` look at one shard at a time."""
        if self._fresh():
            return
        async with self._lock:
            if self._fresh():  # another scrape refreshed while this one waited
                return
            if redis is not None:
                await self._refresh_streams(redis, streams)
            if pool is not None:
                await self._refresh_outbox(pool)
            self._refreshed_at = time.monotonic()

    def _fresh(self) -> bool:
        return self._refreshed_at is not None and time.monotonic() - self._refreshed_at < self._max_age_s

    async def _refresh_streams(self, redis: aioredis.Redis, streams: Sequence[str]) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                snapshot = await bus_snapshot(redis, streams, lag_cap=self._lag_cap)
        except _REDIS_READ_FAILURES as exc:
            log.warning("metrics.bus_read_failed", error=str(exc) or type(exc).__name__)
            for gauge in _BUS_GAUGES:
                gauge.clear()
            BUS_METRICS_UP.labels("redis").set(0)
            return
        # No await between clearing and setting: a concurrent scrape never sees half a snapshot.
        for gauge in _BUS_GAUGES:
            gauge.clear()
        for info in snapshot.streams:
            STREAM_LENGTH.labels(info.stream).set(info.length)
        for stream, count in snapshot.dead_letters.items():
            DEAD_LETTERS.labels(stream).set(count)
        for group in snapshot.groups:
            STREAM_LAG.labels(group.group, group.stream).set(group.lag)
            STREAM_PENDING.labels(group.group, group.stream).set(group.pending)
            STREAM_CONSUMERS.labels(group.group, group.stream).set(group.consumers)
            age = entry_age_s(group.oldest_pending_id, snapshot.now_ms)
            STREAM_OLDEST_PENDING.labels(group.group, group.stream).set(age or 0.0)
        for group, members in zip(snapshot.groups, snapshot.members, strict=True):
            live = sum(1 for member in members if member.live)
            STREAM_LIVE_CONSUMERS.labels(group.group, group.stream).set(live)
        for reader in snapshot.readers:
            labels = (reader.heartbeat.name, reader.stream)
            READER_LIVE.labels(*labels).set(1 if reader.live else 0)
            READER_LAST_SEEN.labels(*labels).set(reader.heartbeat.beat_age_ms / 1000)
            if reader.lag is not None:
                READER_LAG.labels(*labels).set(reader.lag)
        BUS_METRICS_UP.labels("redis").set(1)

    async def _refresh_outbox(self, pool: asyncpg.Pool) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                backlog = await outbox_backlog(pool)
                provider_events = await provider_event_backlog(pool)
        except _DATABASE_READ_FAILURES as exc:
            log.warning("metrics.outbox_read_failed", error=str(exc) or type(exc).__name__)
            BUS_METRICS_UP.labels("database").set(0)
            return
        OUTBOX_BACKLOG.set(backlog.unpublished)
        OUTBOX_OLDEST_UNPUBLISHED.set(backlog.oldest_age_s)
        PROVIDER_EVENTS_WAITING.set(provider_events.waiting)
        PROVIDER_EVENTS_OLDEST_WAITING.set(provider_events.oldest_age_s)
        PROVIDER_EVENTS_FAILED.set(provider_events.failed)
        BUS_METRICS_UP.labels("database").set(1)


_BUS_GAUGES = (
    STREAM_LENGTH,
    DEAD_LETTERS,
    STREAM_LAG,
    STREAM_PENDING,
    STREAM_CONSUMERS,
    STREAM_OLDEST_PENDING,
    STREAM_LIVE_CONSUMERS,
    READER_LAG,
    READER_LAST_SEEN,
    READER_LIVE,
)

BUS_METRICS = BusMetrics()
