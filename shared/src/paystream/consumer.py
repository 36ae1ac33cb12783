"""The stream consumer runtime: the one place that reads, acks, reclaims and dead-letters.

A service registers handlers (`async def handle(event, ctx) -> None`) and runs a `StreamConsumer`:

- one reader per stream (no multi-key command, so streams can later live on different cluster
  slots) with `XREADGROUP ... BLOCK`, reading only as many entries as there are free handler slots;
- every entry runs in its own task, bounded by `concurrency`, under a handler timeout that is
  shorter than the reclaim idle time (so an entry is never worked by two consumers at once);
- the entry is acknowledged only after its handler returns, that is after its effects committed;
  acknowledgements are batched into one XACK per stream by a single acker task;
- a handler that raises is retried in place after a backoff, re-claiming the entry with XCLAIM so
  Redis counts the delivery; after `max_deliveries` (or at once on `PermanentError`) the entry goes
  to `<stream>:dlq` with its error and delivery count, then is acknowledged (with
  `dead_letter_replicas`, only once WAIT says that many replicas hold the letter); a handler that failed
  because PostgreSQL or Redis is unreachable is retried for as long as the outage lasts, without
  using up its deliveries (XCLAIM JUSTID keeps the entry without counting one);
- a sweeper reclaims entries left pending by dead consumers with XAUTOCLAIM (keeping its cursor);
  an entry already delivered `max_deliveries` times (a poison entry that kills its consumer) is
  dead-lettered without running it again;
- an entry's `seq` field (the event's number in its payment's order, see `paystream.ordering`)
  reaches the handler as `ctx.sequence`, and a dead letter keeps it for its replay;
- NOGROUP (Redis restarted without data, or FLUSHALL) recreates the group and carries on;
  connection errors back off with jitter;
- `run(stop)` drains in-flight work on stop within a grace period; `run_once()` is a burst mode for
  tests and tools;
- while `run()` runs, a heartbeat record (`paystream.heartbeat`) says the consumer is alive, idle or
  not: Redis itself cannot tell an idle consumer from a dead one.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import redis.asyncio as aioredis
import structlog
import uuid_utils
from redis.exceptions import ResponseError

from paystream.errors import PermanentError
from paystream.events import (
    SEQUENCE_FIELD,
    STREAM_FIELD,
    Event,
    EventType,
    dead_letter_stream,
    parse_sequence,
)
from paystream.heartbeat import DEFAULT_INTERVAL_S, Heartbeat, ReaderKind
from paystream.loops import (
    AGAIN,
    DEFAULT_BACKOFF,
    STORE_UNAVAILABLE_ERRORS,
    Again,
    Backoff,
    retry_until_ready,
    run_until_stopped,
    wait_any,
    wait_or_stop,
)
from paystream.metrics import (
    DEAD_LETTERS_UNCONFIRMED,
    EVENTS_DEAD_LETTERED,
    EVENTS_FAILED,
    EVENTS_HANDLED,
    EVENTS_RECLAIMED,
    HANDLER_LATENCY,
)
from paystream.redis import REDIS_UNAVAILABLE_ERRORS, xadd_held_by_replicas

log = structlog.get_logger(__name__)

# Redis unreachable, or a command refused (NOGROUP while the group is being recreated, say).
REDIS_FAILURES: tuple[type[BaseException], ...] = (*REDIS_UNAVAILABLE_ERRORS, ResponseError)

DLQ_MAXLEN = 100_000
ERROR_TEXT_LIMIT = 2000


@dataclass(frozen=True, slots=True)
class MessageContext:
    """Where an event came from, for handlers that need more than the event itself."""

    stream: str
    entry_id: str
    group: str
    consumer: str
    delivery_count: int
    # The event's number within its ordering key (the entry's `seq` field; see paystream.ordering),
    # or None: an unordered event, one written before numbering existed, or a malformed field.
    sequence: int | None = None


Handler = Callable[[Event, MessageContext], Awaitable[None]]
OrderingKey = Callable[[Event], str | None]


class HandlerRegistry:
    """Maps event types to handlers; events with no handler are acknowledged and skipped."""

    def __init__(self) -> None:
        self._handlers: dict[EventType, Handler] = {}

    def register(self, *event_types: EventType) -> Callable[[Handler], Handler]:
        def decorator(handler: Handler) -> Handler:
            for event_type in event_types:
                self.add(event_type, handler)
            return handler

        return decorator

    def add(self, event_type: EventType, handler: Handler) -> None:
        if event_type in self._handlers:
            raise ValueError(f"a handler for {event_type} is already registered")
        self._handlers[event_type] = handler

    def merge(self, other: HandlerRegistry) -> None:
        for event_type, handler in other._handlers.items():
            self.add(event_type, handler)

    def types(self) -> frozenset[EventType]:
        return frozenset(self._handlers)

    async def __call__(self, event: Event, ctx: MessageContext) -> None:
        handler = self._handlers.get(event.type)
        if handler is not None:
            await handler(event, ctx)


def unique_consumer_name(group: str) -> str:
    """host-pid-random: unique across replicas and across restarts of one process."""
    return f"{group}-{socket.gethostname()}-{os.getpid()}-{uuid_utils.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    group: str
    streams: tuple[str, ...]
    consumer_name: str = ""
    concurrency: int = 64
    read_count: int = 256
    block_ms: int = 1000
    handler_timeout_s: float = 30.0
    reclaim_idle_ms: int = 60_000
    reclaim_interval_s: float = 5.0
    max_deliveries: int = 5
    retry_base_s: float = 0.2
    retry_cap_s: float = 10.0
    shutdown_grace_s: float = 10.0
    # Events with the same key are handled one at a time, in stream order, within this process.
    ordering_key: OrderingKey | None = None
    heartbeat_interval_s: float = DEFAULT_INTERVAL_S
    # Replicas that must hold a dead letter (WAIT) before its entry is acknowledged: with 1, a
    # master killed right after the dead-letter write (its replica promoted) loses no entry. The
    # services set it from OUTBOX_WAIT_REPLICAS, the same guarantee as the relay's. 0: no wait.
    dead_letter_replicas: int = 0

    def __post_init__(self) -> None:
        if not self.streams:
            raise ValueError("a consumer reads at least one stream")
        if self.reclaim_idle_ms <= self.handler_timeout_s * 1000:
            raise ValueError(
                "reclaim_idle_ms must exceed the handler timeout, or two consumers work one entry"
            )
        if self.max_deliveries < 1 or self.concurrency < 1:
            raise ValueError("max_deliveries and concurrency must be at least 1")
        if self.heartbeat_interval_s <= 0:
            raise ValueError("heartbeat_interval_s must be positive")

    def with_name(self) -> ConsumerConfig:
        if self.consumer_name:
            return self
        return replace(self, consumer_name=unique_consumer_name(self.group))


@dataclass
class _Entry:
    stream: str
    entry_id: str
    fields: Mapping[bytes, bytes] | None
    delivery_count: int
    sequence: int | None = None


@dataclass
class _OrderingLane:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    waiters: int = 0


class StreamConsumer:
    """Runs one consumer of one group over one or more streams."""

    def __init__(self, redis: aioredis.Redis, config: ConsumerConfig, handler: Handler) -> None:
        self._redis = redis
        self.config = config.with_name()
        self._handler = handler
        self._in_flight: set[asyncio.Task[None]] = set()
        self._in_flight_ids: set[tuple[str, str]] = set()
        self._slot_freed = asyncio.Event()
        self._acks: dict[str, list[str]] = defaultdict(list)
        self._ack_ready = asyncio.Event()
        self._lanes: dict[str, _OrderingLane] = {}
        self._stopping = asyncio.Event()
        # Between a handler's attempts the entry must stay ours: wait well under the reclaim deadline.
        self._retry_backoff = Backoff(
            self.config.retry_base_s, min(self.config.retry_cap_s, self.config.reclaim_idle_ms / 2000)
        )
        self.handled = 0
        self.heartbeat = Heartbeat(
            redis,
            kind=ReaderKind.CONSUMER,
            name=self.name,
            group=self.config.group,
            streams=self.config.streams,
            interval_s=self.config.heartbeat_interval_s,
        )

    @property
    def name(self) -> str:
        return self.config.consumer_name

    # -- groups ---------------------------------------------------------------------------------

    async def ensure_groups(self) -> None:
        for stream in self.config.streams:
            await self._ensure_group(stream)

    async def _ensure_group(self, stream: str) -> None:
        try:
            # From "0": events published before the group existed are still handled.
            await self._redis.xgroup_create(stream, self.config.group, id="0", mkstream=True)
            log.info("consumer.group_created", stream=stream, group=self.config.group)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    # -- running --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until `stop` is set, then drain in-flight handlers within the grace period."""
        self._stopping.clear()
        await self._retry_until_ready(stop)
        # Beats until the very end: a consumer still draining is alive, one that stopped is removed.
        heartbeat_stop = asyncio.Event()
        heartbeat = asyncio.create_task(self.heartbeat.run(heartbeat_stop), name=f"heartbeat:{self.name}")
        workers = [asyncio.create_task(self._acker(), name=f"{self.config.group}-acker")]
        readers = []
        for stream in self.config.streams:
            readers.append(asyncio.create_task(self._read_loop(stream, stop), name=f"read:{stream}"))
            readers.append(asyncio.create_task(self._reclaim_loop(stream, stop), name=f"reclaim:{stream}"))
        log.info(
            "consumer.started",
            group=self.config.group,
            consumer=self.name,
            streams=[str(s) for s in self.config.streams],
        )
        try:
            await stop.wait()
        finally:
            self._stopping.set()
            await self._stop_readers(readers)
            await self._drain()
            # The acker flushes what is left and exits on its own: cancelling a task in the middle
            # of a Redis command is not reliable (the client library may swallow the cancellation).
            self._ack_ready.set()
            await asyncio.wait(workers, timeout=10)
            heartbeat_stop.set()
            await asyncio.wait([heartbeat], timeout=5)
            log.info("consumer.stopped", group=self.config.group, consumer=self.name, handled=self.handled)

    async def run_once(self) -> int:
        """Burst mode: handle every entry available now (new and reclaimable), then return the count."""
        await self.ensure_groups()
        before = self.handled
        for stream in self.config.streams:
            await self._reclaim(stream)
            while True:
                entries = await self._read(stream, count=self.config.read_count, block_ms=None)
                if not entries:
                    break
                for entry in entries:
                    await self._start(entry)
                await self._wait_all()
        await self._wait_all()
        await self._flush_acks()
        return self.handled - before

    async def _retry_until_ready(self, stop: asyncio.Event) -> None:
        await retry_until_ready(
            "consumer.create_groups",
            self.ensure_groups,
            stop,
            retry_on=REDIS_UNAVAILABLE_ERRORS,
            log_fields={"group": self.config.group},
        )

    async def _stop_readers(self, readers: Sequence[asyncio.Task[None]]) -> None:
        # Readers notice `stop` after their current BLOCK ends; cancel only if one hangs beyond that.
        _done, pending = await asyncio.wait(readers, timeout=self.config.block_ms / 1000 + 2)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _drain(self) -> None:
        if not self._in_flight:
            return
        log.info("consumer.draining", in_flight=len(self._in_flight))
        _, pending = await asyncio.wait(set(self._in_flight), timeout=self.config.shutdown_grace_s)
        for task in pending:
            task.cancel()  # its entry stays pending and another consumer reclaims it
        if pending:
            await asyncio.wait(pending, timeout=5)
            log.warning("consumer.cancelled_in_flight", count=len(pending))

    async def _wait_all(self) -> None:
        while self._in_flight:
            await asyncio.wait(set(self._in_flight))

    # -- reading --------------------------------------------------------------------------------

    async def _read_loop(self, stream: str, stop: asyncio.Event) -> None:
        # XREADGROUP BLOCK paces the loop; a missing group is recreated inside `_read`, and anything
        # else (a refusal mid-recreation, a bug) backs off: it never stops the reading.
        await run_until_stopped(
            "consumer.read",
            partial(self._read_some, stream, stop),
            stop,
            retry_on=REDIS_UNAVAILABLE_ERRORS,
            log_fields={"stream": stream},
        )

    async def _read_some(self, stream: str, stop: asyncio.Event) -> Again:
        free = await self._free_slots(stop)
        if free == 0:
            return AGAIN
        entries = await self._read(
            stream, count=min(free, self.config.read_count), block_ms=self.config.block_ms
        )
        for entry in entries:
            await self._start(entry)
        return AGAIN

    async def _free_slots(self, stop: asyncio.Event) -> int:
        while len(self._in_flight) >= self.config.concurrency and not stop.is_set():
            self._slot_freed.clear()
            await wait_any([stop, self._slot_freed], 1.0)
        return max(0, self.config.concurrency - len(self._in_flight))

    async def _read(self, stream: str, *, count: int, block_ms: int | None) -> list[_Entry]:
        try:
            response = await self._redis.xreadgroup(
                self.config.group, self.name, {stream: ">"}, count=count, block=block_ms
            )
        except ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            log.warning("consumer.group_missing", stream=stream, group=self.config.group)
            await self._ensure_group(stream)
            return []
        self.heartbeat.mark_read()
        entries: list[_Entry] = []
        reply: Any = response
        for _stream_name, messages in reply or []:
            for entry_id, fields in messages:
                entries.append(_Entry(stream, _text(entry_id), fields, delivery_count=1))
        return entries

    # -- reclaiming -----------------------------------------------------------------------------

    async def _reclaim_loop(self, stream: str, stop: asyncio.Event) -> None:
        interval_s = self.config.reclaim_interval_s
        await run_until_stopped(
            "consumer.reclaim",
            partial(self._reclaim, stream),
            stop,
            interval_s=interval_s,
            first_wait_s=interval_s,
            retry_on=REDIS_UNAVAILABLE_ERRORS,
            log_fields={"stream": stream},
        )

    async def _reclaim(self, stream: str) -> None:
        """Take over entries idle past the deadline (their consumer died), keeping XAUTOCLAIM's cursor."""
        cursor = "0-0"
        while not self._stopping.is_set():
            try:
                reply = await self._redis.xautoclaim(
                    stream,
                    self.config.group,
                    self.name,
                    self.config.reclaim_idle_ms,
                    start_id=cursor,
                    count=100,
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await self._ensure_group(stream)
                return
            cursor = _text(reply[0])
            claimed = [(entry_id, fields) for entry_id, fields in reply[1] if entry_id is not None]
            if claimed:
                counts = await self._delivery_counts(stream, [_text(entry_id) for entry_id, _ in claimed])
                EVENTS_RECLAIMED.labels(self.config.group, stream).inc(len(claimed))
                log.info("consumer.reclaimed", stream=stream, count=len(claimed))
                for entry_id, fields in claimed:
                    key = _text(entry_id)
                    if (stream, key) in self._in_flight_ids:
                        continue
                    await self._free_slots(self._stopping)
                    await self._start(
                        _Entry(stream, key, fields, counts.get(key, self.config.max_deliveries))
                    )
            if cursor in ("0-0", "0"):
                return

    async def _delivery_counts(self, stream: str, entry_ids: Sequence[str]) -> dict[str, int]:
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id in entry_ids:
                pipe.xpending_range(stream, self.config.group, min=entry_id, max=entry_id, count=1)
            replies = await pipe.execute()
        counts: dict[str, int] = {}
        for entry_id, reply in zip(entry_ids, replies, strict=True):
            if reply:
                counts[entry_id] = int(reply[0]["times_delivered"])
        return counts

    # -- handling -------------------------------------------------------------------------------

    async def _start(self, entry: _Entry) -> None:
        task = asyncio.create_task(self._process(entry))
        self._in_flight.add(task)
        self._in_flight_ids.add((entry.stream, entry.entry_id))

        def finished(done: asyncio.Task[None]) -> None:
            self._in_flight.discard(done)
            self._in_flight_ids.discard((entry.stream, entry.entry_id))
            self._slot_freed.set()

        task.add_done_callback(finished)

    async def _process(self, entry: _Entry) -> None:
        structlog.contextvars.bind_contextvars(stream=entry.stream, entry_id=entry.entry_id)
        if entry.fields is None:
            self._ack(entry)  # deleted from the stream while pending: nothing left to handle
            return
        try:
            event = Event.from_fields(entry.fields)
        except PermanentError as exc:
            await self._dead_letter(entry, None, str(exc))
            return
        structlog.contextvars.bind_contextvars(event_id=event.id, event_type=event.type.value)
        if entry.delivery_count > self.config.max_deliveries:
            await self._dead_letter(
                entry,
                event,
                "delivered too often without an acknowledgement (its handler may crash the consumer)",
            )
            return
        entry.sequence = _sequence(entry.fields)
        key = self.config.ordering_key(event) if self.config.ordering_key else None
        if key is None:
            await self._handle_with_retries(entry, event)
            return
        lane = self._lanes.setdefault(key, _OrderingLane())
        lane.waiters += 1
        try:
            async with lane.lock:
                await self._handle_with_retries(entry, event)
        finally:
            lane.waiters -= 1
            if lane.waiters == 0:
                self._lanes.pop(key, None)

    async def _handle_with_retries(self, entry: _Entry, event: Event) -> None:
        group, event_type = self.config.group, event.type.value
        outage_failures = 0
        backoff = self._retry_backoff
        while True:
            ctx = MessageContext(
                entry.stream, entry.entry_id, group, self.name, entry.delivery_count, entry.sequence
            )
            started = time.perf_counter()
            deadline = asyncio.timeout(self.config.handler_timeout_s)
            try:
                async with deadline:
                    await self._handler(event, ctx)
            except asyncio.CancelledError:
                raise
            except PermanentError as exc:
                EVENTS_FAILED.labels(group, event_type).inc()
                await self._dead_letter(entry, event, f"{type(exc).__name__}: {exc}")
                return
            except Exception as exc:
                EVENTS_FAILED.labels(group, event_type).inc()
                error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                # A handler that failed because a store is unreachable, not because of its event, is
                # retried for as long as the outage lasts, and the outage does not count towards
                # `max_deliveries` (or every event in flight during a database restart would be
                # dead-lettered). A handler that overran its deadline counts, whatever it waited for.
                outage = isinstance(exc, STORE_UNAVAILABLE_ERRORS) and not deadline.expired()
                if not outage and entry.delivery_count >= self.config.max_deliveries:
                    await self._dead_letter(entry, event, error)
                    return
                if outage:
                    outage_failures += 1
                    delay = backoff.delay(outage_failures)
                else:
                    delay = backoff.delay(entry.delivery_count - 1)
                log.warning(
                    "consumer.handler_failed",
                    error=error,
                    delivery=entry.delivery_count,
                    store_unavailable=outage,
                    retry_in_s=round(delay, 3),
                )
                if await wait_or_stop(self._stopping, delay) or not await self._reclaim_for_retry(
                    entry, counted=not outage
                ):
                    return  # left pending: this or another consumer reclaims it later
                continue
            HANDLER_LATENCY.labels(group, event_type).observe(time.perf_counter() - started)
            EVENTS_HANDLED.labels(group, event_type).inc()
            self.handled += 1
            self._ack(entry)
            return

    async def _reclaim_for_retry(self, entry: _Entry, *, counted: bool = True) -> bool:
        """XCLAIM the entry back to ourselves (resetting its idle time) so Redis counts the new
        delivery; with `counted=False` (JUSTID) the delivery count stays as it is."""
        try:
            claimed: Any = await self._redis.xclaim(
                entry.stream,
                self.config.group,
                self.name,
                min_idle_time=0,
                message_ids=[entry.entry_id],
                justid=not counted,
            )
        except REDIS_FAILURES as exc:
            log.warning("consumer.retry_claim_failed", error=str(exc))
            return False
        if not claimed:
            return False
        if counted:
            if claimed[0][0] is None:
                return False
            entry.delivery_count += 1
        return True

    # -- acknowledging and dead-lettering ------------------------------------------------------

    def _ack(self, entry: _Entry) -> None:
        self._acks[entry.stream].append(entry.entry_id)
        self._ack_ready.set()

    async def _acker(self) -> None:
        """Send acknowledgements in batches until the consumer stops and nothing is left to send.

        Not a `run_until_stopped` loop: it outlives the stop (the final flush), and its backoff must
        not be cut short by it."""
        failures = 0
        while True:
            await self._ack_ready.wait()
            try:
                await self._flush_acks()
                failures = 0
            except Exception as exc:  # a dead acker would leave every handled entry pending
                failures += 1
                if self._stopping.is_set() and failures > 3:
                    log.error("consumer.acks_abandoned", error=repr(exc))  # entries are redelivered
                    return
                log.warning("consumer.ack_failed", error=repr(exc))
                await asyncio.sleep(DEFAULT_BACKOFF.delay(failures))
                continue
            if self._stopping.is_set() and not self._in_flight and not self._acks:
                return

    async def _flush_acks(self) -> None:
        self._ack_ready.clear()
        if not self._acks:
            return
        batch, self._acks = self._acks, defaultdict(list)
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for stream, entry_ids in batch.items():
                    pipe.xack(stream, self.config.group, *entry_ids)
                await pipe.execute(raise_on_error=False)
        except BaseException:
            for stream, entry_ids in batch.items():  # keep them for the next flush
                self._acks[stream][:0] = entry_ids
            self._ack_ready.set()
            raise

    async def _dead_letter(self, entry: _Entry, event: Event | None, error: str) -> None:
        event_type = event.type.value if event else "unknown"
        fields: dict[Any, Any] = {
            "source_stream": entry.stream,
            "source_id": entry.entry_id,
            "group": self.config.group,
            "consumer": self.name,
            "error": error[:ERROR_TEXT_LIMIT],
            "deliveries": str(entry.delivery_count),
            "event_type": event_type,
            "failed_at": str(int(time.time() * 1000)),
        }
        raw = (entry.fields or {}).get(STREAM_FIELD)
        if raw is not None:
            fields[STREAM_FIELD] = raw
        # Kept as it came, so that a replayed dead letter takes its place in its payment's order.
        raw_sequence = (entry.fields or {}).get(SEQUENCE_FIELD)
        if raw_sequence is not None:
            fields[SEQUENCE_FIELD] = raw_sequence
        if not await self._write_dead_letter(dead_letter_stream(entry.stream), fields):
            # Left pending: reclaimed after `reclaim_idle_ms` and dead-lettered again (a replay of
            # the letters absorbs the copy this may leave behind).
            return
        EVENTS_DEAD_LETTERED.labels(self.config.group, event_type).inc()
        log.error("consumer.dead_lettered", error=error, deliveries=entry.delivery_count)
        self._ack(entry)

    async def _write_dead_letter(self, dlq: str, fields: dict[Any, Any]) -> bool:
        """Append the dead letter; False when fewer replicas than asked for hold it yet."""
        wanted = self.config.dead_letter_replicas
        _, held = await xadd_held_by_replicas(self._redis, dlq, fields, maxlen=DLQ_MAXLEN, wanted=wanted)
        if not held:
            DEAD_LETTERS_UNCONFIRMED.labels(self.config.group).inc()
            log.warning("consumer.dead_letter_unconfirmed", stream=dlq, replicas_wanted=wanted)
        return held


def _sequence(fields: Mapping[bytes, bytes] | None) -> int | None:
    """The entry's sequence number; a malformed one is ignored (the event is still handled, just
    without its place in an order) rather than dead-lettering an otherwise good event."""
    raw = (fields or {}).get(SEQUENCE_FIELD)
    if raw is None:
        return None
    try:
        return parse_sequence(raw)
    except ValueError as exc:
        log.warning("consumer.bad_sequence_field", error=str(exc))
        return None


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
