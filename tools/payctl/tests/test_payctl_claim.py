"""`payctl claim`: idle pending entries move to another consumer without counting as a delivery."""

from __future__ import annotations

import redis.asyncio as aioredis
from payctl_testkit import PAYMENTS, PROCESSOR, BusState, Payctl


async def test_claim_moves_idle_entries_to_the_named_consumer(
    payctl: Payctl, bus: BusState, redis: aioredis.Redis
) -> None:
    result = await payctl("claim", PAYMENTS, PROCESSOR, "--idle", "60s", "--to", "c2", "--json")

    assert result.returncode == 0, result.stderr
    body = result.json()
    assert body["claimed"] == [bus.entry_ids[0]]
    assert body["new_consumer"] is True
    [pending] = await redis.xpending_range(PAYMENTS, PROCESSOR, min="-", max="+", count=10)
    assert pending["consumer"] == b"c2"
    assert pending["times_delivered"] == 3  # moving it is not a delivery


async def test_claim_leaves_entries_that_are_not_idle_long_enough(
    payctl: Payctl, bus: BusState, redis: aioredis.Redis
) -> None:
    result = await payctl("claim", PAYMENTS, PROCESSOR, "--idle", "10m", "--to", "c2", "--json")

    assert result.json()["claimed"] == []
    [pending] = await redis.xpending_range(PAYMENTS, PROCESSOR, min="-", max="+", count=10)
    assert pending["consumer"] == b"c1"


async def test_claim_on_an_unknown_group_is_a_clear_error(payctl: Payctl, bus: BusState) -> None:
    result = await payctl("claim", PAYMENTS, "nobody", "--idle", "1m", "--to", "c2")

    assert result.returncode == 1
    assert result.stderr.strip() == f"payctl: no consumer group 'nobody' on stream '{PAYMENTS}'"
