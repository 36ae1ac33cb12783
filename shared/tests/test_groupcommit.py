"""The group committer: concurrent submissions share batches, and every caller gets an outcome."""

from __future__ import annotations

import asyncio
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
