"""Catch-up: what a reconnecting socket missed, read back from the stream itself.

`payment:events` is the log. A client names the last event it saw (`lastEventId`, a UUIDv7); its
creation time, less the allowed clock skew, is a lower bound for the stream id the event was
published under (publication follows creation). The scan walks forward from there to the entry
carrying that id (position P) and collects, up to the reader's position at the moment the socket
joined its rooms (U), the emissions that would have reached the socket. Events after U arrive live.

One event can reach a socket as several packets (a success: `payment:status-update`, then
`payment:completed`), and a process killed between two of them leaves its client with the first
only. A client that also names the packet it saw last (`lastEventName`) gets the rest of that
event's packets replayed; without it, the whole of its last event counts as seen.

If the event is not in (start, U] but beyond it, this process's reader lags the process the client
was on: nothing needs replaying, and live events up to P are skipped instead (but for the packets of
P after `lastEventName`). If the event cannot be found, lies outside the window, or there is more to
replay than allowed, the result says the catch-up is incomplete and the client must reload state
from the REST API: nothing is guessed.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field

import orjson
import redis.asyncio as aioredis

from notifier.notifications import notifications_for
from notifier.positions import envelope_id, parse_stream_id, stream_entries, uuid7_millis
from notifier.rooms import Emission
from paystream.errors import PermanentError
from paystream.events import Event

SCAN_BATCH = 500
# How far past U to look for the client's last event when this reader lags the one it was on.
LOOKAHEAD_ENTRIES = 20_000
NOT_FOUND = "lastEventId not found in the stream"


@dataclass(frozen=True, slots=True)
class Missed:
    entry_id: str
    emission: Emission


@dataclass(slots=True)
class CatchUpResult:
    complete: bool
    missed: list[Missed] = field(default_factory=list)
    # Set when the client's last event lies beyond U: live events up to here were already seen,
    seen_through: str | None = None
    # but for these packets of that last event (those after `lastEventName`).
    unseen_at_seen_through: frozenset[str] = frozenset()
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class CatchUpScanner:
    redis: aioredis.Redis
    stream: str
    window_s: int
    clock_skew_ms: int
    max_events: int

    async def scan(
        self,
        *,
        last_event_id: str,
        merchant_id: str,
        upto: str,
        wanted: Callable[[Emission], bool],
        last_event_name: str | None = None,
        from_window_start: bool = False,
    ) -> CatchUpResult:
        """The emissions after `last_event_id`, up to and including entry `upto`, that `wanted` keeps.

        `last_event_name`: the packet of `last_event_id` the client saw last; the event's packets
        after it are replayed too. `from_window_start`: for a shard that does not hold
        `last_event_id` (see `scan_shards`), every emission from its creation time less the clock
        skew onwards."""
        created_ms = uuid7_millis(last_event_id)
        if created_ms is None:
            return CatchUpResult(complete=False, reason="lastEventId is not an event id")
        window_start_ms = int(time.time() * 1000) - self.window_s * 1000
        if created_ms < window_start_ms:
            return CatchUpResult(complete=False, reason="lastEventId is older than the catch-up window")
        start = f"{max(created_ms - self.clock_skew_ms, 0)}-0"
        merchant_marker = b'"merchant_id":' + orjson.dumps(merchant_id)
        seen_ids: set[str] = set()
        found = from_window_start
        missed: list[Missed] = []
        async for entry_id, raw in self._entries(start, upto):
            event_id = envelope_id(raw)
            if event_id is None:
                continue
            if not found:
                seen_ids.add(event_id)
                found = event_id == last_event_id
                if found and merchant_marker in raw:
                    rest = _packets_after(raw, last_event_name)
                    missed.extend(Missed(entry_id, emission) for emission in rest if wanted(emission))
                continue
            if event_id in seen_ids:  # a re-published copy of an event already delivered
                continue
            seen_ids.add(event_id)
            if merchant_marker not in raw:
                continue
            try:
                event = Event.decode(raw)
            except PermanentError:
                continue
            for emission in notifications_for(event):
                if wanted(emission):
                    missed.append(Missed(entry_id, emission))
            if len(missed) > self.max_events:
                return CatchUpResult(complete=False, reason="too many missed events to replay")
        if found:
            return CatchUpResult(complete=True, missed=missed)
        beyond = await self._find_after(upto, last_event_id)
        if beyond is not None:
            entry_id, raw = beyond
            rest = _packets_after(raw, last_event_name) if merchant_marker in raw else []
            unseen = frozenset(emission.name for emission in rest)
            return CatchUpResult(complete=True, seen_through=entry_id, unseen_at_seen_through=unseen)
        return CatchUpResult(complete=False, reason=NOT_FOUND)

    async def _entries(self, start: str, end: str) -> AsyncIterator[tuple[str, bytes]]:
        """(entry id, encoded event) for every entry in [start, end], in stream order."""
        if parse_stream_id(start) > parse_stream_id(end):
            return
        lower = start
        while True:
            batch = stream_entries(await self.redis.xrange(self.stream, min=lower, max=end, count=SCAN_BATCH))
            for entry_id, raw in batch:
                if raw is not None:
                    yield entry_id, raw
            if len(batch) < SCAN_BATCH:
                return
            lower = "(" + batch[-1][0]

    async def _find_after(self, after: str, event_id: str) -> tuple[str, bytes] | None:
        """The first entry after `after` carrying `event_id`, within the lookahead."""
        lower = "(" + after
        scanned = 0
        while scanned < LOOKAHEAD_ENTRIES:
            batch = stream_entries(await self.redis.xrange(self.stream, min=lower, max="+", count=SCAN_BATCH))
            for entry_id, raw in batch:
                if raw is not None and envelope_id(raw) == event_id:
                    return entry_id, raw
            scanned += len(batch)
            if len(batch) < SCAN_BATCH:
                return None
            lower = "(" + batch[-1][0]
        return None


def _packets_after(raw: bytes, last_event_name: str | None) -> list[Emission]:
    """The packets of an encoded event that come after the one named `last_event_name` (in the
    order every path sends them); none without a name, or for a name the event does not produce."""
    if last_event_name is None:
        return []
    try:
        emissions = notifications_for(Event.decode(raw))
    except PermanentError:
        return []
    names = [emission.name for emission in emissions]
    if last_event_name not in names:
        return []
    return emissions[names.index(last_event_name) + 1 :]


@dataclass(slots=True)
class ShardedCatchUp:
    result: CatchUpResult
    # Per shard stream: live events up to this entry were replayed or already seen (complete only),
    seen_through: dict[str, str] = field(default_factory=dict)
    # but for these packets of the entry itself (the rest of the client's last event).
    unseen_at_seen_through: dict[str, frozenset[str]] = field(default_factory=dict)


async def scan_shards(
    scanners: Sequence[CatchUpScanner],
    *,
    last_event_id: str,
    merchant_id: str,
    upto: Mapping[str, str],
    wanted: Callable[[Emission], bool],
    last_event_name: str | None = None,
) -> ShardedCatchUp:
    """A catch-up over every shard of the stream (`paystream.shards`), `upto` giving each shard's
    reader position when the socket joined its rooms.

    The client's last event lies on one shard, and there the scan is the single stream's: exact. The
    other shards have no position in common with it (their entry ids come from other servers'
    clocks, and the client's view is one event id), so they are replayed from the event's creation
    time less the clock skew: what the client may already have seen there comes again (at least
    once, never lost; clients dedupe on the event id, as they must for any reconnect). The catch-up
    is complete when the event is found on a shard and no shard has more to replay than allowed.
    """
    if len(scanners) == 1:
        (scanner,) = scanners
        single = await scanner.scan(
            last_event_id=last_event_id,
            merchant_id=merchant_id,
            upto=upto[scanner.stream],
            wanted=wanted,
            last_event_name=last_event_name,
        )
        if not single.complete:
            return ShardedCatchUp(single)
        return ShardedCatchUp(
            single,
            {scanner.stream: single.seen_through or upto[scanner.stream]},
            {scanner.stream: single.unseen_at_seen_through},
        )
    results = {
        scanner.stream: await scanner.scan(
            last_event_id=last_event_id,
            merchant_id=merchant_id,
            upto=upto[scanner.stream],
            wanted=wanted,
            last_event_name=last_event_name,
        )
        for scanner in scanners
    }
    holding = [stream for stream, result in results.items() if result.complete]
    if not holding:
        # Not found anywhere, unless a shard said why it could not look (the same for every shard).
        refused = [result for result in results.values() if result.reason != NOT_FOUND]
        return ShardedCatchUp(refused[0] if refused else CatchUpResult(complete=False, reason=NOT_FOUND))
    for scanner in scanners:
        if scanner.stream in holding:
            continue
        results[scanner.stream] = await scanner.scan(
            last_event_id=last_event_id,
            merchant_id=merchant_id,
            upto=upto[scanner.stream],
            wanted=wanted,
            from_window_start=True,
        )
        if not results[scanner.stream].complete:
            return ShardedCatchUp(results[scanner.stream])
    missed = list(
        heapq.merge(
            *(result.missed for result in results.values()), key=lambda item: parse_stream_id(item.entry_id)
        )
    )
    if len(missed) > max(scanner.max_events for scanner in scanners):
        return ShardedCatchUp(CatchUpResult(complete=False, reason="too many missed events to replay"))
    seen = {stream: result.seen_through or upto[stream] for stream, result in results.items()}
    unseen = {stream: result.unseen_at_seen_through for stream, result in results.items()}
    return ShardedCatchUp(CatchUpResult(complete=True, missed=missed), seen, unseen)
