"""Per-socket delivery state: which rooms a socket is in, and whether it is live or catching up.

A socket is live when it has no catch-up work: the reader sends it events directly. While it has
(from connect until its first catch-up, and during each later catch-up) the reader appends its events
to a bounded buffer instead, and the socket's delivery task sends the replay first, then the buffer.
Every change to rooms, jobs and buffer happens without an `await` in between, on the one event loop,
so the reader never sees half a change.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from notifier.auth import Principal
from notifier.positions import StreamId, parse_stream_id
from notifier.rooms import Emission, rooms_reached


class CatchUpScope(StrEnum):
    CONNECT = "connect"
    SUBSCRIBE = "subscribe"


@dataclass(frozen=True, slots=True)
class CatchUpJob:
    """Rooms a socket just joined, the readers' positions at that moment, and what the client saw."""

    scope: CatchUpScope
    rooms: frozenset[str]
    # Rooms the socket was already in: what reached it through them it has already received.
    prior_rooms: frozenset[str]
    # Each shard stream's reader position (one entry when the stream is not sharded).
    upto: Mapping[str, str]
    last_event_id: str | None
    invoice_id: str | None = None
    # The packet of `last_event_id` the client saw last (`lastEventName`); None: all of it.
    last_event_name: str | None = None

    def wants(self, principal: Principal, emission: Emission) -> bool:
        """An emission reaching the socket through this job's rooms and through no earlier room."""
        return bool(rooms_reached(principal, emission, self.rooms)) and not rooms_reached(
            principal, emission, self.prior_rooms
        )


@dataclass(frozen=True, slots=True)
class Buffered:
    entry_id: str
    emission: Emission
    # The shard stream the entry came from: entry ids of different shards do not compare.
    stream: str


@dataclass(frozen=True, slots=True)
class SeenThrough:
    """Live events of `stream` up to `entry_id` reaching the socket through `job`'s rooms were
    already seen, but for the packets of `entry_id` itself named in `unseen_names`."""

    stream: str
    entry_id: str
    job: CatchUpJob
    unseen_names: frozenset[str] = frozenset()

    def covers(self, entry: StreamId, name: str) -> bool:
        boundary = parse_stream_id(self.entry_id)
        return entry < boundary or (entry == boundary and name not in self.unseen_names)


@dataclass(eq=False)
class Session:
    sid: str
    eio_sid: str
    principal: Principal
    # The lastEventId (and lastEventName) the socket connected with: where its client's view of
    # the stream stopped.
    resume_from: str | None = None
    resume_name: str | None = None
    rooms: set[str] = field(default_factory=set)
    jobs: deque[CatchUpJob] = field(default_factory=deque)
    buffer: list[Buffered] = field(default_factory=list)
    seen_through: list[SeenThrough] = field(default_factory=list)
    delivery: asyncio.Task[None] | None = None
    expiry: asyncio.TimerHandle | None = None
    closing: bool = False

    @property
    def live(self) -> bool:
        return self.delivery is None and not self.closing

    def already_seen(self, item: Buffered) -> bool:
        """True for a live event that a catch-up replayed or the client saw on another process."""
        entry = parse_stream_id(item.entry_id)
        for seen in self.seen_through:
            if seen.stream != item.stream:
                continue
            if seen.covers(entry, item.emission.name) and seen.job.wants(self.principal, item.emission):
                return True
        return False

    def forget_seen_through(self, stream: str, position: str, *, inclusive: bool = True) -> None:
        """Drop the marks the stream's reader has gone past: no live event can fall under them any more."""
        reached = parse_stream_id(position)
        self.seen_through = [
            seen
            for seen in self.seen_through
            if seen.stream != stream
            or parse_stream_id(seen.entry_id) > reached
            or (not inclusive and parse_stream_id(seen.entry_id) == reached)
        ]
