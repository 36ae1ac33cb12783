"""Fixtures for payctl's tests: `payctl` bound to the test Redis, and a bus in a known state."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

# The suite runs with --import-mode=importlib, which puts no test directory on sys.path: make the
# helpers module next to this file (uniquely named, so it cannot shadow another) importable.
sys.path.insert(0, str(Path(__file__).parent))

from payctl_testkit import (
    DEAD_LETTER_ERROR,
    DISPATCHER,
    PAYMENTS,
    PROCESSOR,
    BusState,
    Payctl,
    PayctlResult,
    payment_event,
    publish,
    run_payctl,
)

from paystream.consumer import ConsumerConfig, StreamConsumer
from paystream.errors import PermanentError
from paystream.events import Event, EventType
from paystream.streaminfo import server_time_ms


@pytest.fixture
def payctl(redis_url: str) -> Payctl:
    """`await payctl("groups", "--json", env={...})`: payctl on the test Redis (no database)."""

    async def run(*args: str, env: Mapping[str, str] | None = None, timeout: float = 30) -> PayctlResult:
        return await run_payctl(*args, env={"REDIS_URL": redis_url, **(env or {})}, timeout=timeout)

    return run


@pytest.fixture
async def bus(redis: aioredis.Redis) -> BusState:
    now_ms = await server_time_ms(redis)
    events = [
        payment_event(EventType.PAYMENT_CREATED, "mer_a", "pay_1", "created"),
        payment_event(EventType.PAYMENT_SUCCESS, "mer_a", "pay_1", "success"),
        payment_event(EventType.PAYMENT_FAILED, "mer_b", "pay_2", "failed"),
    ]
    ages_ms = [120_000, 60_000, 1_000]
    entry_ids = [
        await publish(redis, PAYMENTS, event, f"{now_ms - age}-0")
        for event, age in zip(events, ages_ms, strict=True)
    ]

    await redis.xgroup_create(PAYMENTS, PROCESSOR, id="0")
    await redis.xreadgroup(PROCESSOR, "c1", {PAYMENTS: ">"}, count=2)
    await redis.xack(PAYMENTS, PROCESSOR, entry_ids[1])
    # Known idle time and delivery count for the pending entry.
    await redis.xclaim(PAYMENTS, PROCESSOR, "c1", 0, [entry_ids[0]], idle=90_000, retrycount=3)

    async def dispatch(event: Event, _ctx: Any) -> None:
        if event.merchant_id == "mer_b":
            raise PermanentError(DEAD_LETTER_ERROR)

    consumer = StreamConsumer(redis, ConsumerConfig(group=DISPATCHER, streams=(PAYMENTS,)), dispatch)
    assert await consumer.run_once() == 2
    dead = await redis.xrange(f"{PAYMENTS}:dlq")
    assert len(dead) == 1
    return BusState(entry_ids, events, dead[0][0].decode(), now_ms)
