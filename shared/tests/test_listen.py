"""The reconnecting LISTEN against real PostgreSQL: notifications reach the owner, a lost session is
replaced (and the owner told to catch up), the owner's own work runs on the live connection, and it
listens only when told to."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest

from paystream.listen import Listener, ListenSession
from paystream_devstack.testing import eventually

WAIT_S = 10.0  # an upper bound for what arrives in milliseconds; never a sleep


class Owner:
    """What a listener's owner sees: one queue entry per `on_notify()`, one per session end."""

    def __init__(self) -> None:
        self.notified: asyncio.Queue[None] = asyncio.Queue()
        self.sessions_ended = 0

    def on_notify(self) -> None:
        self.notified.put_nowait(None)

    def on_session_end(self) -> None:
        self.sessions_ended += 1

    async def next_notify(self) -> None:
        await asyncio.wait_for(self.notified.get(), WAIT_S)


@pytest.fixture
def channel() -> str:
    return f"test_{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def run_listener() -> AsyncIterator[Callable[[Listener], asyncio.Event]]:
    running: list[tuple[asyncio.Event, asyncio.Task[None]]] = []

    def start(listener: Listener) -> asyncio.Event:
        stop = asyncio.Event()
        running.append((stop, asyncio.create_task(listener.run(stop))))
        return stop

    yield start
    for stop, task in running:
        stop.set()
        await asyncio.wait_for(task, WAIT_S)


async def listener_pid(pool: asyncpg.Pool, name: str, *, other_than: int = 0) -> int:
    """The backend of the listener's session (found by its application_name), once connected."""

    async def found() -> int | None:
        pid: int | None = await pool.fetchval(
            "SELECT pid FROM pg_stat_activity WHERE application_name = $1 AND pid <> $2", name, other_than
        )
        return pid

    pid: int = await eventually(found, timeout=WAIT_S, message="the listener's session")
    return pid


async def test_each_notification_and_each_new_session_call_the_owner(
    database_url: str, db_pool: asyncpg.Pool, channel: str, run_listener: Any
) -> None:
    owner = Owner()
    name = f"listener {channel}"
    listener = Listener(
        database_url,
        channel,
        owner.on_notify,
        name="test",
        server_settings={"application_name": name},
        on_session_end=owner.on_session_end,
        backoff=lambda _: 0.01,
    )
    run_listener(listener)
    await owner.next_notify()  # listening: catch up on whatever was announced before
    await db_pool.execute("SELECT pg_notify($1, 'one')", channel)
    await owner.next_notify()

    # The server ends the session: a new one replaces it, and the owner is told to catch up.
    first = await listener_pid(db_pool, name)
    await db_pool.execute("SELECT pg_terminate_backend($1)", first)
    await owner.next_notify()
    await listener_pid(db_pool, name, other_than=first)
    assert owner.sessions_ended == 1
    await db_pool.execute("SELECT pg_notify($1, 'two')", channel)
    await owner.next_notify()
    assert owner.notified.empty()


async def test_the_owner_tends_the_live_connection_and_listens_only_once_it_says_so(
    database_url: str, db_pool: asyncpg.Pool, channel: str, run_listener: Any
) -> None:
    owner = Owner()
    tended: asyncio.Queue[int] = asyncio.Queue()
    listen_now = asyncio.Event()

    async def tend(session: ListenSession) -> None:
        # A statement on the session itself: it also shows that anything NOTIFYed before it, had
        # this session been listening, would have been delivered by now.
        pid: int = await session.connection.fetchval("SELECT pg_backend_pid()")
        if listen_now.is_set():
            await session.listen()
            await session.listen()  # once is enough: no second catch-up, no second listener
        tended.put_nowait(pid)

    listener = Listener(
        database_url,
        channel,
        owner.on_notify,
        name="test",
        listen_at_once=False,
        tend=tend,
        tend_interval_s=0.01,
    )
    run_listener(listener)
    pid = await asyncio.wait_for(tended.get(), WAIT_S)
    await db_pool.execute("SELECT pg_notify($1, 'unheard')", channel)
    assert await asyncio.wait_for(tended.get(), WAIT_S) == pid  # the same session, tended again
    assert owner.notified.empty(), "not listening yet: nothing reaches the owner"

    listen_now.set()
    await owner.next_notify()  # started listening: one catch-up
    await db_pool.execute("SELECT pg_notify($1, 'heard')", channel)
    await owner.next_notify()
    # The sentinel: two more rounds of tending on the session after the NOTIFY's delivery.
    for _ in range(2):
        await asyncio.wait_for(tended.get(), WAIT_S)
    assert owner.notified.empty(), "one listener on the session: each notification reaches it once"


async def test_an_error_in_the_owners_work_ends_the_session_and_a_new_one_catches_up(
    database_url: str, channel: str, run_listener: Any
) -> None:
    owner = Owner()
    sessions: asyncio.Queue[int] = asyncio.Queue()
    seen: set[int] = set()

    async def tend(session: ListenSession) -> None:
        pid: int = await session.connection.fetchval("SELECT pg_backend_pid()")
        if pid in seen:
            return
        seen.add(pid)
        sessions.put_nowait(pid)
        if len(seen) == 1:
            raise ValueError("a bug in the owner's probe")

    listener = Listener(
        database_url,
        channel,
        owner.on_notify,
        name="test",
        tend=tend,
        tend_interval_s=0.01,
        on_session_end=owner.on_session_end,
        backoff=lambda _: 0.01,
    )
    run_listener(listener)
    await owner.next_notify()
    first = await asyncio.wait_for(sessions.get(), WAIT_S)
    second = await asyncio.wait_for(sessions.get(), WAIT_S)
    assert first != second
    await owner.next_notify()  # the second session's catch-up
    assert owner.sessions_ended == 1


async def test_an_unreachable_database_is_retried_with_growing_backoff_until_stopped(
    channel: str, run_listener: Any
) -> None:
    owner = Owner()
    failures: list[int] = []
    retried = asyncio.Event()

    def backoff(failure: int) -> float:
        failures.append(failure)
        if failure >= 3:
            retried.set()
        return 0.01

    # Port 9 (discard) on loopback: nothing listens there, the connection is refused at once.
    listener = Listener(
        "postgresql://nobody@127.0.0.1:9/none", channel, owner.on_notify, name="test", backoff=backoff
    )
    stop = run_listener(listener)
    await asyncio.wait_for(retried.wait(), WAIT_S)
    stop.set()
    assert failures[:3] == [1, 2, 3]
    assert owner.notified.empty()
