"""One reconnecting LISTEN: a dedicated connection that hears a channel's notifications.

PostgreSQL delivers a NOTIFY only to sessions listening at that moment, so a listener whose connection
dropped misses whatever was announced meanwhile. A `Listener` keeps one connection of its own (LISTEN
cannot share a pooled one), reconnects with backoff and jitter whenever it is lost, and calls
`on_notify()` for each notification and once more whenever it starts listening on a new session,
so that its owner catches up on what it may have missed. A loss is noticed when the connection
closes (asyncpg's termination callback), not at the next check.

The owner may run its own periodic work on the live connection (`tend`, every `tend_interval_s`,
the first time at once): the outbox relay probes its leader lock there and starts listening only
once it leads (`listen_at_once=False`, then `ListenSession.listen()`). An error in `tend` ends the
session like a lost connection; `on_session_end()` runs after every session.

An owner whose loop is woken by the notifications runs the listener beside it with
`async with listener.running(stop):` (the outbox relay, the webhook scheduler, the provider-event
claimer); the listener stops with the block.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import asyncpg

from paystream.db import DATABASE_ERRORS
from paystream.logging import get_logger
from paystream.loops import backoff_delay, wait_any, wait_or_stop

log = get_logger(__name__)

# How often a live session without `tend` work looks at its connection (a termination is noticed
# at once anyway; this covers a close the callback did not report).
DEFAULT_TEND_INTERVAL_S = 5.0
CLOSE_TIMEOUT_S = 2.0


@dataclass(slots=True)
class ListenSession:
    """One connection of a `Listener`, for the owner's periodic work on it."""

    connection: asyncpg.Connection
    _start_listening: Callable[[], Awaitable[None]] = field(repr=False)
    listening: bool = False

    async def listen(self) -> None:
        """Start hearing the channel on this session (once), and catch up."""
        if not self.listening:
            await self._start_listening()
            self.listening = True


class Listener:
    """Keeps a connection LISTENing on `channel` until stopped; see the module docstring."""

    def __init__(
        self,
        dsn: str,
        channel: str,
        on_notify: Callable[[], None],
        *,
        name: str,
        server_settings: Mapping[str, str] | None = None,
        listen_at_once: bool = True,
        tend: Callable[[ListenSession], Awaitable[None]] | None = None,
        tend_interval_s: float = DEFAULT_TEND_INTERVAL_S,
        on_session_end: Callable[[], None] | None = None,
        backoff: Callable[[int], float] = backoff_delay,
    ) -> None:
        self._dsn = dsn
        self._channel = channel
        self._on_notify = on_notify
        self._name = name
        self._server_settings = dict(server_settings or {})
        self._listen_at_once = listen_at_once
        self._tend = tend
        self._tend_interval_s = tend_interval_s
        self._on_session_end = on_session_end
        self._backoff = backoff

    @contextlib.asynccontextmanager
    async def running(self, stop: asyncio.Event) -> AsyncIterator[None]:
        """Run the listener in a task of its own for the duration of the block."""
        task = asyncio.create_task(self.run(stop), name=f"listener:{self._name}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run(self, stop: asyncio.Event) -> None:
        """Listen (reconnecting) until `stop` is set; nothing a session meets ends this loop."""
        failures = 0
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self._dsn, server_settings=self._server_settings or None)
                session = ListenSession(conn, functools.partial(self._start_listening, conn))
                if self._listen_at_once:
                    await session.listen()
                failures = 0
                await self._tend_until_lost(session, stop)
                if stop.is_set():
                    return
                log.warning("listen.connection_lost", listener=self._name, channel=self._channel)
            except DATABASE_ERRORS as exc:
                log.warning("listen.failed", listener=self._name, channel=self._channel, error=str(exc))
            except Exception:  # a dead listener would leave its owner waiting for fallbacks only
                log.exception("listen.error", listener=self._name, channel=self._channel)
            finally:
                if self._on_session_end is not None:
                    self._on_session_end()
                if conn is not None and not conn.is_closed():
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=CLOSE_TIMEOUT_S)
            # A lost session counts as a failure too, so that a server that keeps closing it is not
            # reconnected to in a spin.
            failures += 1
            await wait_or_stop(stop, self._backoff(failures))

    async def _tend_until_lost(self, session: ListenSession, stop: asyncio.Event) -> None:
        conn = session.connection
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _: lost.set())
        while not stop.is_set() and not lost.is_set() and not conn.is_closed():
            if self._tend is not None:
                await self._tend(session)
            await wait_any([stop, lost], self._tend_interval_s)

    async def _start_listening(self, conn: asyncpg.Connection) -> None:
        await conn.add_listener(self._channel, self._notified)
        self._on_notify()  # catch up on whatever was announced while this session did not listen

    def _notified(self, *_: object) -> None:
        self._on_notify()
