"""The provider accounts' periodic reload: no failure, expected or not, ends it."""

from __future__ import annotations

import asyncio
from typing import cast

import asyncpg
import pytest

from paystream_api.provider_webhooks import accounts
from paystream_api.provider_webhooks.accounts import AccountDirectory


async def test_the_reload_outlives_a_database_outage_and_an_unexpected_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(accounts, "REFRESH_INTERVAL_S", 0.001)
    directory = AccountDirectory(cast(asyncpg.Pool, None))
    failures: list[BaseException] = [
        ValueError("a row the snapshot did not expect"),
        asyncpg.exceptions.CannotConnectNowError("the database system is starting up"),
    ]
    reloaded = asyncio.Event()

    async def load() -> None:
        if failures:
            raise failures.pop(0)
        reloaded.set()

    monkeypatch.setattr(directory, "load", load)
    stop = asyncio.Event()
    task = asyncio.create_task(directory.run(stop))
    reload_done = asyncio.ensure_future(reloaded.wait())
    done, _ = await asyncio.wait({task, reload_done}, return_when=asyncio.FIRST_COMPLETED)
    assert task not in done, f"the reload loop ended: {task.exception()!r}"
    stop.set()
    await task
