"""The group committer: concurrent submissions share batches, and every caller gets an outcome."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Sequence

import pytest

from paystream.errors import RetryableError
from paystream.groupcommit import CommitterOverloaded, GroupCommitter, Submission, split_and_retry


async def test_concurrent_submissions_are_committed_in_batches_with_their_own_results() -> None:
    batches: list[list[int]] = []

    async def commit(batch: Sequence[Submission[int, int]]) -> None:
        batches.append([submission.item for submission in batch])
        await asyncio.sleep(0)  # a round trip: more callers queue meanwhile
        for submission in batch:
            submission.resolve(submission.item * 10)

    committer: GroupCommitter[int, int] = GroupCommitter(commit, name="test", max_batch=8, writers=1)
    committer.start()
    results = await asyncio.gather(*(committer.submit(n) for n in range(20)))
    await committer.stop()
    assert results == [n * 10 for n in range(20)]
    assert sorted(item for batch in batches for item in batch) == list(range(20))
    assert max(len(batch) for batch in batches) == 8
    assert len(batches) < 20


async def test_a_failed_commit_fails_every_caller_of_its_batch() -> None:
    async def commit(batch: Sequence[Submission[int, None]]) -> None:
        raise ValueError("the store refused the batch")

    committer: GroupCommitter[int, None] = GroupCommitter(commit, name="test")
    committer.start()
    outcomes = await asyncio.gather(*(committer.submit(n) for n in range(5)), return_exceptions=True)
    await committer.stop()
    assert all(isinstance(outcome, ValueError) for outcome in outcomes)


async def test_a_submission_the_commit_leaves_unsettled_fails_instead_of_waiting() -> None:
    async def commit(batch: Sequence[Submission[int, None]]) -> None:
        batch[0].resolve(None)

    committer: GroupCommitter[int, None] = GroupCommitter(commit, name="test", writers=1)
    committer.start()
    first, second = await asyncio.gather(committer.submit(1), committer.submit(2), return_exceptions=True)
    await committer.stop()
    assert first is None
    assert isinstance(second, RuntimeError)


async def test_stop_commits_what_is_queued_and_then_refuses() -> None:
    committed: list[int] = []
    release = asyncio.Event()

    async def commit(batch: Sequence[Submission[int, None]]) -> None:
        await release.wait()
        committed.extend(submission.item for submission in batch)
        for submission in batch:
            submission.resolve(None)

    committer: GroupCommitter[int, None] = GroupCommitter(commit, name="test", writers=1)
    committer.start()
    waiting = [asyncio.create_task(committer.submit(n)) for n in range(3)]
    await asyncio.sleep(0)
    stopping = asyncio.create_task(committer.stop())
    await asyncio.sleep(0)
    with pytest.raises(RetryableError):
        await committer.submit(99)
    release.set()
    await stopping
    await asyncio.gather(*waiting)
    assert sorted(committed) == [0, 1, 2]


async def test_submit_before_start_is_refused_at_once() -> None:
    async def commit(batch: Sequence[Submission[int, None]]) -> None:
        for submission in batch:
            submission.resolve(None)

    committer: GroupCommitter[int, None] = GroupCommitter(commit, name="test")
    with pytest.raises(RetryableError):
        await asyncio.wait_for(committer.submit(1), timeout=1)


async def test_past_max_queued_a_submission_is_refused_at_once() -> None:
    release = asyncio.Event()

    async def commit(batch: Sequence[Submission[int, None]]) -> None:
        await release.wait()
        for submission in batch:
            submission.resolve(None)

    committer: GroupCommitter[int, None] = GroupCommitter(
        commit, name="test", writers=1, max_batch=1, max_queued=2
    )
    committer.start()
    in_flight = asyncio.create_task(committer.submit(0))
    await asyncio.sleep(0)  # the writer takes item 0
    queued = [asyncio.create_task(committer.submit(n)) for n in (1, 2)]
    await asyncio.sleep(0)
    assert committer.queued == 2
    with pytest.raises(CommitterOverloaded):
        await committer.submit(3)
    release.set()
    await asyncio.gather(in_flight, *queued)
    await committer.stop()


async def test_stop_with_a_grace_period_fails_what_it_could_not_commit() -> None:
    async def commit(batch: Sequence[Submission[int, None]]) -> None:
        await asyncio.Event().wait()  # a store that never answers

    committer: GroupCommitter[int, None] = GroupCommitter(commit, name="test", writers=1, max_batch=1)
    committer.start()
    waiting = [asyncio.create_task(committer.submit(n)) for n in range(3)]
    await asyncio.sleep(0)
    await committer.stop(grace_s=0.05)
    outcomes = await asyncio.gather(*waiting, return_exceptions=True)
    assert all(isinstance(outcome, RetryableError) for outcome in outcomes)


async def test_split_and_retry_fails_only_the_poisonous_item() -> None:
    async def commit(batch: Sequence[Submission[int, int]]) -> None:
        if any(submission.item < 0 for submission in batch):
            if len(batch) > 1:
                await split_and_retry(batch, commit)
                return
            raise ValueError("negative")
        for submission in batch:
            submission.resolve(submission.item)

    committer: GroupCommitter[int, int] = GroupCommitter(commit, name="test", writers=1, max_batch=10)
    committer.start()
    outcomes = await asyncio.gather(*(committer.submit(n) for n in (1, -1, 2)), return_exceptions=True)
    await committer.stop()
    assert outcomes[0] == 1 and outcomes[2] == 2
    assert isinstance(outcomes[1], ValueError)


async def test_a_stop_whose_caller_is_cancelled_still_stops_the_writers_and_fails_their_batches() -> None:
    committing = asyncio.Event()

    async def commit(batch: Sequence[Submission[int, None]]) -> None:
        committing.set()
        await asyncio.Event().wait()  # a store that never answers

    committer: GroupCommitter[int, None] = GroupCommitter(commit, name="test", writers=1, max_batch=1)
    committer.start()
    in_flight = asyncio.create_task(committer.submit(1))
    await committing.wait()
    queued = asyncio.create_task(committer.submit(2))
    await asyncio.sleep(0)  # queued behind the batch in flight
    stopping = asyncio.create_task(committer.stop())  # as long as it takes...
    await asyncio.sleep(0)
    stopping.cancel()  # ...until the supervisor's deadline cancels the task that stops it
    with pytest.raises(asyncio.CancelledError):
        await stopping
    outcomes = await asyncio.wait_for(asyncio.gather(in_flight, queued, return_exceptions=True), timeout=5)
    assert all(isinstance(outcome, RetryableError) for outcome in outcomes), outcomes


async def test_run_is_start_then_stop_for_a_supervised_task() -> None:
    committed: list[int] = []

    async def commit(batch: Sequence[Submission[int, None]]) -> None:
        committed.extend(submission.item for submission in batch)
        for submission in batch:
            submission.resolve(None)

    committer: GroupCommitter[int, None] = GroupCommitter(commit, name="test", writers=1)
    stop = asyncio.Event()
    committer.start()  # a submission may come before the task's first step
    first = asyncio.create_task(committer.submit(1))
    running = asyncio.create_task(committer.run(stop, grace_s=5))
    await first
    stop.set()
    await running
    assert committed == [1]
    with pytest.raises(RetryableError):
        await committer.submit(2)


async def test_write_behind_submissions_settle_without_a_waiter_and_are_refused_like_the_others() -> None:
    async def commit(batch: Sequence[Submission[int, None]]) -> None:
        for submission in batch:
            if submission.item < 0:
                submission.fail(ValueError("refused"))
            else:
                submission.resolve(None)

    unhandled: list[dict[str, object]] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    committer: GroupCommitter[int, None] = GroupCommitter(commit, name="test", writers=1)
    try:
        with pytest.raises(RetryableError):
            committer.submit_nowait(0)  # before start
        committer.start()
        written = committer.submit_nowait(1)
        refused = committer.submit_nowait(-1)
        await asyncio.wait([written, refused])
        assert written.result() is None
        del refused  # nobody looks at its error: that must not be reported as unhandled
        gc.collect()
        await committer.stop()
        with pytest.raises(RetryableError):
            committer.submit_nowait(2)  # after stop
    finally:
        loop.set_exception_handler(previous)
    assert unhandled == []
