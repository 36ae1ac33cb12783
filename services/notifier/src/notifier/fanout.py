"""The hub: hands each event from the stream reader to this process's sockets, exactly once each.

Every notifier process reads the whole stream (see `reader`) and emits only to its own sockets, so a
client receives each event from the one process it is connected to. Within a process, an emission
for several rooms goes once to each socket in any of them. A socket that is catching up has its
events buffered; a socket that lets too many packets pile up is cut off (it reconnects and catches
up), so one slow client never holds up the reader or anyone else.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from functools import partial
from itertools import groupby
from operator import itemgetter
from typing import Any

import redis.asyncio as aioredis
import socketio  # type: ignore[import-untyped]

from notifier.auth import Principal
from notifier.catchup import CatchUpScanner, scan_shards
from notifier.metrics import (
    CATCH_UPS,
    CONNECTED_SOCKETS,
    EVENT_TO_EMIT,
    NOTIFICATIONS_SENT,
    SLOW_CLIENTS_DISCONNECTED,
)
from notifier.notifications import notifications_for
from notifier.reader import StreamTail
from notifier.rooms import Emission, payment_room, reaches_via, rooms_on_connect
from notifier.sessions import Buffered, CatchUpJob, CatchUpScope, SeenThrough, Session
from notifier.settings import NotifierSettings
from paystream.consumer import unique_consumer_name
from paystream.errors import PermanentError
from paystream.events import Event, Stream
from paystream.logging import get_logger
from paystream.redis import REDIS_UNAVAILABLE_ERRORS

log = get_logger(__name__)

# Sent to a socket whose token has expired, just before it is closed.
SESSION_EXPIRED = "session:expired"
EXPIRED_FAREWELL = {"code": "TOKEN_EXPIRED", "message": "authentication token expired"}

NAMESPACE = "/"
CATCH_UP_COMPLETE = "catchup:complete"


class Hub:
    def __init__(self, sio: socketio.AsyncServer, redis: aioredis.Redis, settings: NotifierSettings) -> None:
        self.sio = sio
        self.sessions: dict[str, Session] = {}
        # One reader per shard stream of payment:events (`paystream.shards`), under one name: each
        # publishes its own heartbeat (its shard's position), and `payctl` joins them by the name.
        shards = settings.common.streams.keys(Stream.PAYMENT_EVENTS)
        name = unique_consumer_name("notifier")
        self.tails = tuple(
            StreamTail(redis, shard, partial(self.dispatch, shard), name=name) for shard in shards
        )
        self.scanners = tuple(
            CatchUpScanner(
                redis,
                shard,
                window_s=settings.catchup_window_s,
                clock_skew_ms=settings.clock_skew_ms,
                max_events=settings.catchup_max_events,
            )
            for shard in shards
        )
        self.max_buffered = settings.max_buffered
        self.draining = False
        self._disconnects: set[asyncio.Task[Any]] = set()
        # Who is in each room (sids in joining order). Kept here rather than in python-socketio's
        # rooms: the hub picks every emission's recipients itself, before its first await, and
        # python-socketio's public `enter_room` is a coroutine, while a socket must join its rooms
        # and queue its catch-up with no await in between (see `open_session`).
        self._members: dict[str, dict[str, None]] = {}

    @property
    def tail(self) -> StreamTail:
        """The reader of the first (with one shard, the only) shard."""
        return self.tails[0]

    def positions(self) -> dict[str, str]:
        """Each shard reader's position: what a socket joining its rooms now has not been sent live."""
        return {tail.stream: tail.position for tail in self.tails}

    # -- sessions -------------------------------------------------------------------------------

    def open_session(
        self, sid: str, principal: Principal, last_event_id: str | None, last_event_name: str | None = None
    ) -> Session:
        """Join the token's rooms and queue the catch-up; no await, so no event slips past."""
        session = Session(
            sid=sid,
            eio_sid=self._engine_sid(sid),
            principal=principal,
            resume_from=last_event_id,
            resume_name=last_event_name if last_event_id is not None else None,
        )
        self.sessions[sid] = session
        rooms = rooms_on_connect(principal)
        for room in rooms:
            self._enter(session, room)
        job = CatchUpJob(
            scope=CatchUpScope.CONNECT,
            rooms=rooms,
            prior_rooms=frozenset(),
            upto=self.positions(),
            last_event_id=last_event_id,
            last_event_name=session.resume_name,
        )
        session.jobs.append(job)
        # The delivery task first runs after the connect handler returns, by which time
        # python-socketio has queued the CONNECT packet: nothing reaches the client before it.
        self._start_delivery(session)
        delay = max(0.0, principal.expires_at - time.time())
        session.expiry = asyncio.get_running_loop().call_later(delay, self._expire, sid)
        CONNECTED_SOCKETS.set(len(self.sessions))
        if self.draining:
            # Accepted then closed, not refused: a refused client stops; a closed one reconnects,
            # and the load balancer sends it to a process that is not going away.
            session.closing = True
            self._disconnect_later(session)
        return session

    def close_session(self, sid: str) -> None:
        session = self.sessions.pop(sid, None)
        if session is None:
            return
        session.closing = True
        for room in session.rooms:
            self._forget(room, sid)
        if session.delivery is not None:
            session.delivery.cancel()
        if session.expiry is not None:
            session.expiry.cancel()
        CONNECTED_SOCKETS.set(len(self.sessions))

    def subscribe(
        self,
        session: Session,
        invoice_id: str,
        last_event_id: str | None,
        last_event_name: str | None = None,
    ) -> None:
        """Join `payment:<invoiceId>` (already authorised) and replay what it missed there.

        The replay starts after the subscription's own lastEventId (and lastEventName) or, without
        one, after the one the socket connected with: a client that reconnects with lastEventId and
        subscribes again gets what the invoice's room had while it was away.
        """
        if last_event_id is None:
            last_event_id, last_event_name = session.resume_from, session.resume_name
        room = payment_room(session.principal.merchant_id, invoice_id)
        if room in session.rooms or session.closing:
            return
        prior_rooms = frozenset(session.rooms)
        self._enter(session, room)
        if last_event_id is None:
            return  # a fresh subscription starts with the live events
        job = CatchUpJob(
            scope=CatchUpScope.SUBSCRIBE,
            rooms=frozenset({room}),
            prior_rooms=prior_rooms,
            upto=self.positions(),
            last_event_id=last_event_id,
            invoice_id=invoice_id,
            last_event_name=last_event_name,
        )
        session.jobs.append(job)
        self._start_delivery(session)

    def unsubscribe(self, session: Session, invoice_id: str) -> None:
        room = payment_room(session.principal.merchant_id, invoice_id)
        session.rooms.discard(room)
        self._forget(room, session.sid)

    def _enter(self, session: Session, room: str) -> None:
        session.rooms.add(room)
        self._members.setdefault(room, {})[session.sid] = None

    def _forget(self, room: str, sid: str) -> None:
        members = self._members.get(room)
        if members is not None:
            members.pop(sid, None)
            if not members:
                del self._members[room]

    async def drain(self) -> None:
        """Shutdown: close every socket (and any that connects meanwhile).

        The close is at the Engine.IO level, after what each socket was already sent: clients read
        it as a lost transport and reconnect (to another process, with their lastEventId), not as
        a deliberate kick-out. Their requests end once they have answered it (see `shutdown`).
        """
        self.draining = True
        sessions = list(self.sessions.values())
        log.info("hub.draining", sockets=len(sessions))
        for session in sessions:
            session.closing = True
            self._disconnect_later(session)
        if self._disconnects:
            await asyncio.wait(set(self._disconnects))

    # -- live events ----------------------------------------------------------------------------

    async def dispatch(self, stream: str, entry_id: str, raw: bytes) -> None:
        """Send one entry's notifications (of shard stream `stream`). Recipients are chosen before
        the first await."""
        try:
            event = Event.decode(raw)
        except PermanentError as exc:
            log.warning("dispatch.malformed_event", entry_id=entry_id, error=str(exc))
            return
        emissions = notifications_for(event)
        if not emissions:
            return
        EVENT_TO_EMIT.observe(max(0.0, time.time() - event.occurred_at.timestamp()))
        sends = [(emission, self._live_recipients(stream, entry_id, emission)) for emission in emissions]
        sends = [(emission, recipients) for emission, recipients in sends if recipients]
        # All of one event's packets are queued before any socket writer runs (tasks start in
        # order): a client that saw one of them cannot lose the others to a crash, as they share
        # the event id it will resume from.
        await asyncio.gather(
            *(
                self.sio.emit(emission.name, emission.payload, to=recipients, namespace=NAMESPACE)
                for emission, recipients in sends
            )
        )
        for emission, recipients in sends:
            NOTIFICATIONS_SENT.labels(emission.name, "live").inc(len(recipients))

    def _live_recipients(self, stream: str, entry_id: str, emission: Emission) -> list[str]:
        """Live sockets reached by the emission, each once; buffers it for those catching up."""
        recipients: list[str] = []
        handled: set[str] = set()
        for room in emission.rooms:
            for sid in list(self._members.get(room, ())):
                if sid in handled:
                    continue
                session = self.sessions.get(sid)
                if session is None or session.closing or not reaches_via(session.principal, emission, room):
                    continue
                handled.add(sid)
                if not session.live:
                    if len(session.buffer) >= self.max_buffered:
                        self._cut_off(session, queued=len(session.buffer))
                    else:
                        session.buffer.append(Buffered(entry_id, emission, stream))
                    continue
                if session.seen_through:
                    if session.already_seen(Buffered(entry_id, emission, stream)):
                        continue  # seen on the process this client came from, whose reader was ahead
                    session.forget_seen_through(stream, entry_id, inclusive=False)
                queued = self._queued_packets(session)
                if queued >= self.max_buffered:
                    self._cut_off(session, queued=queued)
                    continue
                recipients.append(sid)
        return recipients

    # -- slow clients ---------------------------------------------------------------------------

    def _queued_packets(self, session: Session) -> int:
        """Packets waiting in the socket's Engine.IO queue: the client's unread backlog."""
        socket = self._engine_socket(session)
        return socket.queue.qsize() if socket is not None else 0

    def _cut_off(self, session: Session, *, queued: int) -> None:
        session.closing = True
        SLOW_CLIENTS_DISCONNECTED.inc()
        log.warning(
            "socket.slow_client_disconnected",
            sid=session.sid,
            merchant_id=session.principal.merchant_id,
            queued=queued,
            limit=self.max_buffered,
        )
        self._disconnect_later(session)

    def _expire(self, sid: str) -> None:
        session = self.sessions.get(sid)
        if session is None:
            return
        session.closing = True
        log.info("socket.token_expired", sid=sid, merchant_id=session.principal.merchant_id)
        # Said before the close, so a frontend knows to fetch a fresh token rather than retry this one.
        self._disconnect_later(session, farewell=(SESSION_EXPIRED, EXPIRED_FAREWELL))

    def _disconnect_later(self, session: Session, farewell: tuple[str, dict[str, str]] | None = None) -> None:
        """Close the socket's transport in the background; the reader never waits for a client."""
        task = asyncio.create_task(self._close_transport(session, farewell), name=f"close:{session.sid}")
        self._disconnects.add(task)
        task.add_done_callback(self._disconnects.discard)

    async def _close_transport(self, session: Session, farewell: tuple[str, dict[str, str]] | None) -> None:
        if farewell is not None:
            with contextlib.suppress(Exception):  # a client already gone needs no explanation
                await self.sio.emit(farewell[0], farewell[1], to=session.sid, namespace=NAMESPACE)
        # An Engine.IO CLOSE after whatever is queued; no waiting for the client to take it (one
        # that stopped reading never would). A drain waits for the transports to end instead.
        socket = self._engine_socket(session)
        if socket is not None:
            await socket.close(wait=False)

    # -- the Engine.IO transport ----------------------------------------------------------------
    # python-socketio has no public API for two things the hub needs of a socket's transport: how
    # many packets wait in its send queue (the client's unread backlog), and closing it without
    # waiting for the client to drain that queue (`AsyncServer.disconnect` waits, forever for a
    # client that stopped reading; a Socket.IO DISCONNECT would tell the client not to reconnect).
    # These two methods are the only places that reach past its public API.

    def _engine_sid(self, sid: str) -> str:
        eio_sid: str = self.sio.manager.eio_sid_from_sid(sid, NAMESPACE)
        return eio_sid

    def _engine_socket(self, session: Session) -> Any:
        """The Engine.IO socket under the session; None once it has gone."""
        return self.sio.eio.sockets.get(session.eio_sid)

    # -- catch-up and buffered delivery ---------------------------------------------------------

    def _start_delivery(self, session: Session) -> None:
        if session.delivery is None:
            session.delivery = asyncio.create_task(
                self._deliver_backlog(session), name=f"deliver:{session.sid}"
            )

    async def _deliver_backlog(self, session: Session) -> None:
        """Run the socket's catch-ups, then its buffered live events, then hand it to the reader."""
        try:
            while not session.closing:
                if session.jobs:
                    await self._catch_up(session, session.jobs.popleft())
                elif session.buffer:
                    pending, session.buffer = session.buffer, []
                    fresh = [
                        (item.entry_id, item.emission) for item in pending if not session.already_seen(item)
                    ]
                    await self._send(session, fresh, path="buffered")
                else:
                    break  # no await from the emptiness check to going live below
        except asyncio.CancelledError:
            raise
        except REDIS_UNAVAILABLE_ERRORS as exc:
            log.warning("catch_up.redis_unavailable", sid=session.sid, error=str(exc))
            session.closing = True
            self._disconnect_later(session)
        except Exception:
            log.exception("delivery.failed", sid=session.sid)
            session.closing = True
            self._disconnect_later(session)
        finally:
            # Marks beyond the reader's position stay: the reader has yet to hand those entries over.
            for tail in self.tails:
                session.forget_seen_through(tail.stream, tail.position)
            session.delivery = None

    async def _catch_up(self, session: Session, job: CatchUpJob) -> None:
        if job.last_event_id is None:
            return  # a fresh connection or subscription: it starts with the live events
        if not job.rooms & session.rooms:
            return  # unsubscribed before its replay began
        caught_up = await scan_shards(
            self.scanners,
            last_event_id=job.last_event_id,
            merchant_id=session.principal.merchant_id,
            upto=job.upto,
            wanted=partial(job.wants, session.principal),
            last_event_name=job.last_event_name,
        )
        result = caught_up.result
        for stream, entry_id in caught_up.seen_through.items():
            unseen = caught_up.unseen_at_seen_through.get(stream, frozenset())
            session.seen_through.append(SeenThrough(stream, entry_id, job, unseen))
        await self._send(
            session, [(missed.entry_id, missed.emission) for missed in result.missed], path="catch-up"
        )
        if session.closing:
            return
        summary: dict[str, Any] = {
            "scope": job.scope.value,
            "lastEventId": job.last_event_id,
            "replayed": len(result.missed),
            "complete": result.complete,
        }
        if job.invoice_id is not None:
            summary["invoiceId"] = job.invoice_id
        if result.reason is not None:
            summary["reason"] = result.reason
        await self.sio.emit(CATCH_UP_COMPLETE, summary, to=session.sid, namespace=NAMESPACE)
        CATCH_UPS.labels(job.scope.value, "complete" if result.complete else "incomplete").inc()
        log.info(
            "catch_up.done",
            sid=session.sid,
            scope=job.scope.value,
            replayed=len(result.missed),
            complete=result.complete,
            reason=result.reason,
        )

    async def _send(self, session: Session, items: list[tuple[str, Emission]], *, path: str) -> None:
        """Send (entry id, emission) pairs in order, the packets of one entry queued together."""
        for _entry_id, group in groupby(items, key=itemgetter(0)):
            if session.closing:
                return
            queued = self._queued_packets(session)
            if queued >= self.max_buffered:
                self._cut_off(session, queued=queued)
                return
            emissions = [emission for _, emission in group]
            await asyncio.gather(
                *(
                    self.sio.emit(emission.name, emission.payload, to=session.sid, namespace=NAMESPACE)
                    for emission in emissions
                )
            )
            for emission in emissions:
                NOTIFICATIONS_SENT.labels(emission.name, path).inc()
