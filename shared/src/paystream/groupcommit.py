"""Group commit: many concurrent callers, one transaction per batch.

Handlers that each need a short transaction (claim the event, change a few rows, enqueue events)
spend most of their time on round trips and commits rather than on their own work. A
`GroupCommitter` lets each caller `submit()` its item and wait, while a few writer tasks take whatever
has queued up meanwhile and hand it to `commit()` as one batch. Under light load a batch holds one
item and nothing waits for company; under heavy load batches grow by themselves, with no timer.

`commit(batch)` settles every submission it is given (`resolve()` or `fail()`); one it leaves
unsettled fails with an error, and when `commit` raises, every unsettled submission fails with that
exception, so no caller waits forever. The rules for waiters, the same for every writer built on this:

- before `start()` and after `stop()`, `submit()` raises `RetryableError` at once (nothing queues
  where no writer will take it);
- `submit_nowait()` is `submit()` for a write-behind caller: the same refusals, then a future that
  nobody needs to await (its commit function decides how long to retry);
- past `max_queued` waiting items, `submit()` raises `CommitterOverloaded` (a `RetryableError`) at
  once rather than queueing behind a store that is not keeping up;
- on `stop(grace_s)`, what is queued is still committed for up to `grace_s`; then the writers are
  cancelled and every submission not settled fails with `RetryableError` (also when the task that
  called `stop()` is cancelled meanwhile); `run(stop)` is the same for a supervised task;
- nothing a commit raises can stop a writer: the batch fails, the writer takes the next one.

`split_and_retry()` is the usual answer to a failed batch: commit each submission on its own, so
that one poisonous item fails alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from paystream.errors import RetryableError
from paystream.logging import get_logger

log = get_logger(__name__)

ItemT = TypeVar("ItemT")
ResultT = TypeVar("ResultT")


@dataclass(slots=True)
class Submission(Generic[ItemT, ResultT]):
    """One caller's item and the future it waits on."""

    item: ItemT
    future: asyncio.Future[ResultT] = field(repr=False)

    @property
    def settled(self) -> bool:
        return self.future.done()

    def resolve(self, result: ResultT) -> None:
        if not self.future.done():
            self.future.set_result(result)

    def fail(self, error: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(error)


CommitBatch = Callable[[Sequence[Submission[ItemT, ResultT]]], Awaitable[None]]


class CommitterOverloaded(RetryableError):
    """Too many items are waiting for a commit; try again shortly."""


async def split_and_retry(
    batch: Sequence[Submission[ItemT, ResultT]], commit: CommitBatch[ItemT, ResultT]
) -> None:
    """Commit each unsettled submission of a failed batch on its own: one that fails again fails
    alone, with its own error."""
    for submission in batch:
        if submission.settled:
            continue
        try:
            await commit([submission])
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            submission.fail(exc)


class GroupCommitter(Generic[ItemT, ResultT]):
    """Batches concurrent submissions for `commit`; `writers` batches may be in flight at once."""

    def __init__(
        self,
        commit: CommitBatch[ItemT, ResultT],
        *,
        name: str,
        max_batch: int = 100,
        writers: int = 2,
        max_queued: int | None = None,
    ) -> None:
        if max_batch < 1 or writers < 1:
            raise ValueError("max_batch and writers must be at least 1")
        self._commit = commit
        self._name = name
        self._max_batch = max_batch
        self._writers = writers
        self._max_queued = max_queued
        self._queue: list[Submission[ItemT, ResultT]] = []
        self._ready = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._closed = False

    def start(self) -> None:
        if self._tasks:
            return
        self._tasks = [
            asyncio.create_task(self._write_loop(), name=f"{self._name}-writer-{n}")
            for n in range(self._writers)
        ]

    async def stop(self, grace_s: float | None = None) -> None:
        """Refuse new items, commit those already queued (for up to `grace_s`; None: as long as it
        takes), then stop the writers; what is left unsettled fails. Safe to call twice, and when
        the caller is cancelled while it waits, the writers are stopped all the same."""
        self._closed = True
        self._ready.set()
        tasks, self._tasks = self._tasks, []
        late = set(tasks)
        try:
            if tasks:
                _, late = await asyncio.wait(tasks, timeout=grace_s)
        finally:
            for task in late:
                task.cancel()  # its batch fails with RetryableError
            for submission in self._drain():
                submission.fail(RetryableError(f"{self._name} stopped before committing"))
            if late:
                await asyncio.wait(late)

    async def run(self, stop: asyncio.Event, *, grace_s: float | None = None) -> None:
        """Run the writers until `stop` is set, then `stop(grace_s)`: the shape of a loop that a
        task supervisor runs. (Call `start()` first too when submissions may come before this
        task's first step: until then they are refused.)"""
        self.start()
        try:
            await stop.wait()
        except asyncio.CancelledError:
            await self.stop(0)  # cancelled outright: no grace period
            raise
        await self.stop(grace_s)

    async def submit(self, item: ItemT) -> ResultT:
        """Queue `item` for the next batch and wait until its batch has been committed."""
        future = self._enqueue(item)
        try:
            return await future
        finally:
            if not future.done():  # the caller gave up; the writer still settles it
                future.add_done_callback(_consume_outcome)

    def submit_nowait(self, item: ItemT) -> asyncio.Future[ResultT]:
        """Queue `item` for the next batch without waiting (a write-behind caller): the future
        settles when the batch has been committed, and need not be awaited. Refused as `submit()`
        is, by raising at once."""
        future = self._enqueue(item)
        future.add_done_callback(_consume_outcome)
        return future

    def _enqueue(self, item: ItemT) -> asyncio.Future[ResultT]:
        if self._closed or not self._tasks:
            raise RetryableError(f"{self._name} is not running")
        if self._max_queued is not None and len(self._queue) >= self._max_queued:
            raise CommitterOverloaded(f"{self._name}: too many items waiting to be committed")
        future: asyncio.Future[ResultT] = asyncio.get_running_loop().create_future()
        self._queue.append(Submission(item, future))
        self._ready.set()
        return future

    @property
    def queued(self) -> int:
        return len(self._queue)

    def _drain(self, limit: int | None = None) -> list[Submission[ItemT, ResultT]]:
        count = len(self._queue) if limit is None else min(limit, len(self._queue))
        batch, self._queue = self._queue[:count], self._queue[count:]
        return batch

    async def _write_loop(self) -> None:
        while True:
            if not self._queue:
                if self._closed:
                    return
                self._ready.clear()
                await self._ready.wait()
                continue
            batch = [item for item in self._drain(self._max_batch) if not item.settled]
            if batch:
                await self._commit_batch(batch)

    async def _commit_batch(self, batch: list[Submission[ItemT, ResultT]]) -> None:
        try:
            await self._commit(batch)
        except asyncio.CancelledError:
            for submission in batch:
                submission.fail(RetryableError(f"{self._name} stopped while committing"))
            raise
        except Exception as exc:
            log.warning("group_commit.failed", committer=self._name, batch=len(batch), error=repr(exc))
            for submission in batch:
                submission.fail(exc)
            return
        for submission in batch:
            submission.fail(RuntimeError(f"{self._name}: commit left a submission unsettled"))


def _consume_outcome(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()  # mark an abandoned caller's error as seen
