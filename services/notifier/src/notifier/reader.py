"""The stream reader: every notifier process tails `payment:events` itself, with plain XREAD (one
reader per shard stream, see `paystream.shards`: one XREAD never names two keys).

Not a consumer group: a group hands each entry to one consumer, but every process has its own
sockets and needs every event. Reading the log directly means no hand-off between processes (no
pub/sub that loses what is published while a process dies), and catch-up reads the same log. The
reader keeps its position only in memory; a restarted process starts at the end of the stream, and
its reconnecting clients name their own position (`lastEventId`).

Without a group, Redis knows nothing of a reader, so each one publishes a heartbeat record
(`paystream.heartbeat`) with its position: `payctl groups` / `payctl health` and the bus metrics
show every notifier process with its lag and last heartbeat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from notifier.positions import ORIGIN, envelope_id, stream_entries
from notifier.recent import RecentIds
from paystream.consumer import unique_consumer_name
from paystream.heartbeat import DEFAULT_INTERVAL_S, Heartbeat, ReaderKind
from paystream.logging import get_logger
from paystream.loops import AGAIN, Again, retry_until_ready, run_until_stopped
from paystream.redis import REDIS_UNAVAILABLE_ERRORS
from paystream.streaminfo import entries_behind, stream_info

log = get_logger(__name__)

READ_COUNT = 512
BLOCK_MS = 1000
RECENT_IDS = 50_000
# Entries read back at start-up so a re-published copy of an event seen just before is still skipped.
PRIME_ENTRIES = 2000
# How far the lag is counted for this process's own gauge; beyond it the gauge reads the cap.
LAG_COUNT_CAP = 10_000

EntryHandler = Callable[[str, bytes], Awaitable[None]]


class StreamTail:
    """Reads a stream from its end onwards and hands each new entry, once, to `on_entry`.

    `position` is the id of the last entry handed over; `on_entry` runs to completion for one entry
    before the next, and must choose who receives the entry before its first await.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        stream: str,
        on_entry: EntryHandler,
        *,
        heartbeat_interval_s: float = DEFAULT_INTERVAL_S,
        name: str | None = None,
    ) -> None:
        self._redis = redis
        self._stream = stream
        self._on_entry = on_entry
        self._recent = RecentIds(RECENT_IDS)
        self.position = ORIGIN
        # The readers of one process's shards share a name (their heartbeats differ by stream).
        self.name = name or unique_consumer_name("notifier")
        # Run by the app next to `run()`; it publishes `position` at each beat.
        self.heartbeat = Heartbeat(
            redis,
            kind=ReaderKind.READER,
            name=self.name,
            streams=(stream,),
            interval_s=heartbeat_interval_s,
            position=lambda: self.position,
        )

    @property
    def stream(self) -> str:
        return self._stream

    async def lag(self) -> tuple[int, bool]:
        """Entries of the stream after this reader's position now; (count, capped)."""
        info = await stream_info(self._redis, self._stream)
        return await entries_behind(self._redis, info, self.position, LAG_COUNT_CAP)

    async def start(self, stop: asyncio.Event) -> None:
        """Position at the current end of the stream, retrying until Redis answers."""

        async def newest_entries() -> Any:
            return await self._redis.xrevrange(self._stream, count=PRIME_ENTRIES)

        newest = await retry_until_ready(
            "reader.position", newest_entries, stop, retry_on=REDIS_UNAVAILABLE_ERRORS
        )
        if newest is None:
            return  # stopped before Redis answered
        entries = stream_entries(newest)
        for _entry_id, raw in reversed(entries):
            event_id = envelope_id(raw) if raw is not None else None
            if event_id is not None:
                self._recent.add(event_id)
        if entries:
            self.position = entries[0][0]
        log.info("reader.positioned", stream=self._stream, position=self.position)

    async def run(self, stop: asyncio.Event) -> None:
        """Hand over new entries until `stop` is set; Redis outages back off and resume in place."""
        # XREAD BLOCK paces the loop; a refusal (a key of another type) or a bug backs off the same way.
        await run_until_stopped("reader.read", self._read_some, stop, retry_on=REDIS_UNAVAILABLE_ERRORS)

    async def _read_some(self) -> Again:
        reply = await self._redis.xread({self._stream: self.position}, count=READ_COUNT, block=BLOCK_MS)
        self.heartbeat.mark_read()
        streams: Any = reply or []
        for _stream, entries in streams:
            for entry_id, raw in stream_entries(entries):
                await self._hand_over(entry_id, raw)
        return AGAIN

    async def _hand_over(self, entry_id: str, raw: bytes | None) -> None:
        # The position moves before `on_entry` runs, and `on_entry` picks its recipients before its
        # first await: a socket that joins a room later sees `position` >= this entry, so its
        # catch-up covers the entry, and every later entry reaches it live.
        self.position = entry_id
        event_id = envelope_id(raw) if raw is not None else None
        if raw is None or event_id is None:
            log.warning("reader.unreadable_entry", entry_id=entry_id)
            return
        if not self._recent.add(event_id):
            log.info("reader.duplicate_skipped", entry_id=entry_id, event_id=event_id)
            return
        try:
            await self._on_entry(entry_id, raw)
        except asyncio.CancelledError:
            raise
        except Exception:  # one bad entry must not stop the notifications of everyone else
            log.exception("reader.dispatch_failed", entry_id=entry_id, event_id=event_id)
