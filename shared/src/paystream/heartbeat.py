"""Heartbeats: each process that reads the bus says, in one Redis key of its own, that it is alive.

Redis cannot tell an idle consumer from a dead one: Redis 6.2 lists a consumer in XINFO CONSUMERS
only once it has been served an entry, and its `idle` counts from the last entry served, so on a
quiet platform a healthy consumer looks absent or stale. So each reader refreshes a record itself:

- a group consumer (`paystream.consumer.StreamConsumer`) at `paystream:heartbeat:consumer:<group>:<name>`;
- a notifier's stream reader (plain XREAD, no group) at `paystream:heartbeat:reader:<stream>:<name>`,
  with its position (the last entry id it handed over).

Each beat is one `SET key <json> PX <keep>` (one key per process, no multi-key command: fit for Redis
Cluster). A beat is due every `interval`; a record whose last beat is older than `lapse` (three
intervals) is a process that died or hangs. The key outlives the lapse (`keep`, 10 minutes), so a
process that was SIGKILLed stays listed as silent for a while instead of vanishing; a clean stop
deletes its key. The age of the last beat is read from the key's PTTL (`keep - PTTL`), on Redis's
own clock, so no host's clock skew can make a dead process look alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog

from paystream.loops import run_until_stopped
from paystream.redis import REDIS_UNAVAILABLE_ERRORS

log = structlog.get_logger(__name__)

HEARTBEAT_PREFIX = "paystream:heartbeat"
DEFAULT_INTERVAL_S = 5.0
# Missed beats before a record counts as silent: one slow beat (a busy event loop) is not a death.
LAPSE_BEATS = 3
DEFAULT_KEEP_MS = 600_000
RECORD_VERSION = 1
_REMOVE_TIMEOUT_S = 2.0


class ReaderKind(StrEnum):
    CONSUMER = "consumer"  # a member of a consumer group
    READER = "reader"  # a plain XREAD tail (the notifier)


def heartbeat_key(kind: ReaderKind, scope: str, name: str) -> str:
    """`scope` is the group of a consumer, the stream of a reader."""
    return f"{HEARTBEAT_PREFIX}:{kind.value}:{scope}:{name}"


def _now_ms() -> int:
    return int(time.time() * 1000)


class Heartbeat:
    """Refreshes one process's record every `interval_s` until stopped, then deletes it.

    The owner calls `mark_read()` after each read from Redis returns (even empty), so the record
    also says whether the read loop, not just the event loop, is turning. `position` (readers only)
    is asked for at each beat.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        kind: ReaderKind,
        name: str,
        streams: Sequence[str],
        group: str | None = None,
        interval_s: float = DEFAULT_INTERVAL_S,
        keep_ms: int = DEFAULT_KEEP_MS,
        position: Callable[[], str | None] | None = None,
    ) -> None:
        if kind is ReaderKind.CONSUMER and not group:
            raise ValueError("a consumer's heartbeat names its group")
        if not streams:
            raise ValueError("a heartbeat names the streams it reads")
        self._redis = redis
        self.kind = kind
        self.name = name
        self.group = group
        self.streams = tuple(streams)
        self.interval_ms = max(1, int(interval_s * 1000))
        self.lapse_ms = self.interval_ms * LAPSE_BEATS
        # A record must outlive its lapse, or a dead process would vanish instead of going silent.
        self.keep_ms = max(keep_ms, self.lapse_ms * 2)
        self._position = position
        self.key = heartbeat_key(kind, group if kind is ReaderKind.CONSUMER and group else streams[0], name)
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at_ms = _now_ms()
        self.last_read_at_ms: int | None = None
        self._failing = False

    def mark_read(self) -> None:
        self.last_read_at_ms = _now_ms()

    def record(self) -> dict[str, Any]:
        return {
            "v": RECORD_VERSION,
            "kind": self.kind.value,
            "name": self.name,
            "group": self.group,
            "streams": list(self.streams),
            "host": self.host,
            "pid": self.pid,
            "started_at_ms": self.started_at_ms,
            "beat_at_ms": _now_ms(),
            "last_read_at_ms": self.last_read_at_ms,
            "position": self._position() if self._position is not None else None,
            "interval_ms": self.interval_ms,
            "lapse_ms": self.lapse_ms,
            "keep_ms": self.keep_ms,
        }

    async def beat(self) -> None:
        await self._redis.set(self.key, orjson.dumps(self.record()), px=self.keep_ms)

    async def run(self, stop: asyncio.Event) -> None:
        """Beat now and every interval until `stop` is set, then delete the record."""
        try:
            await run_until_stopped("heartbeat", self._beat_once, stop)
        finally:
            await self.remove()

    async def _beat_once(self) -> float:
        """One beat; returns the wait until the next, read at each beat (the owner may change it).
        A failed beat is retried at the next one, not sooner: a late beat is no emergency."""
        try:
            await self.beat()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away: the next beat tries again; never stop beating
            if not self._failing:
                log.warning("heartbeat.failed", key=self.key, error=repr(exc))
            self._failing = True
            return self.interval_ms / 1000
        if self._failing:
            log.info("heartbeat.resumed", key=self.key)
        self._failing = False
        return self.interval_ms / 1000

    async def remove(self) -> None:
        """A clean stop: the record goes at once (a consumer that stopped is not a dead one)."""
        with contextlib.suppress(*REDIS_UNAVAILABLE_ERRORS, TimeoutError):
            async with asyncio.timeout(_REMOVE_TIMEOUT_S):
                await self._redis.delete(self.key)


# -- reading ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HeartbeatStatus:
    """A heartbeat record as found in Redis, with the age of its last beat."""

    key: str
    kind: ReaderKind
    name: str
    group: str | None
    streams: tuple[str, ...]
    host: str
    pid: int | None
    started_at_ms: int | None
    position: str | None
    lapse_ms: int
    # On Redis's clock: how long ago the last beat was written, and when (ms since the epoch).
    beat_age_ms: int
    beat_redis_ms: int
    # How long before the last beat the process last read from Redis (both on its own clock).
    read_before_beat_ms: int | None

    @property
    def live(self) -> bool:
        return self.beat_age_ms <= self.lapse_ms

    @property
    def last_read_age_ms(self) -> int | None:
        if self.read_before_beat_ms is None:
            return None
        return self.beat_age_ms + self.read_before_beat_ms

    def reads(self, stream: str) -> bool:
        return stream in self.streams


async def read_heartbeats(
    redis: aioredis.Redis, now_ms: int, kind: ReaderKind | None = None
) -> list[HeartbeatStatus]:
    """Every heartbeat record (of one kind, or all), sorted by key; unreadable records are skipped.

    SCAN walks the keyspace, which on this platform holds only the streams and these records.
    """
    pattern = f"{HEARTBEAT_PREFIX}:{kind.value if kind else '*'}:*"
    keys = sorted({_text(key) async for key in redis.scan_iter(match=pattern, count=1000)})
    if not keys:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for key in keys:
            pipe.get(key)
            pipe.pttl(key)
        replies = await pipe.execute()
    found = []
    for index, key in enumerate(keys):
        status = parse_heartbeat(key, replies[2 * index], replies[2 * index + 1], now_ms)
        if status is not None:
            found.append(status)
    return found


def parse_heartbeat(key: str, raw: Any, pttl: Any, now_ms: int) -> HeartbeatStatus | None:
    """One record; None when it expired meanwhile, has no expiry (not ours) or is malformed."""
    if raw is None or not isinstance(pttl, int) or pttl < 0:
        return None
    try:
        record = orjson.loads(raw)
        if not isinstance(record, dict) or not isinstance(record.get("streams"), list):
            raise TypeError("not a heartbeat record")
        beat_age_ms = max(0, int(record["keep_ms"]) - pttl)
        beat_at = _optional_int(record.get("beat_at_ms"))
        last_read_at = _optional_int(record.get("last_read_at_ms"))
        return HeartbeatStatus(
            key=key,
            kind=ReaderKind(record["kind"]),
            name=str(record["name"]),
            group=_optional_str(record.get("group")),
            streams=tuple(str(stream) for stream in record["streams"]),
            host=str(record.get("host") or ""),
            pid=_optional_int(record.get("pid")),
            started_at_ms=_optional_int(record.get("started_at_ms")),
            position=_optional_str(record.get("position")),
            lapse_ms=int(record["lapse_ms"]),
            beat_age_ms=beat_age_ms,
            beat_redis_ms=now_ms - beat_age_ms,
            read_before_beat_ms=(
                max(0, beat_at - last_read_at) if beat_at is not None and last_read_at is not None else None
            ),
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, OverflowError):
        log.warning("heartbeat.unreadable_record", key=key)
        return None


def _optional_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
