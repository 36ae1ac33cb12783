"""The group committer: concurrent submissions share batches, and every caller gets an outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from paystream.errors import RetryableError
from paystream.groupcommit import GroupCommitter, Submission


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
