"""Helpers for payctl's tests: `payctl` as a real subprocess, events, and the seeded bus's shape."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import redis.asyncio as aioredis

from paystream.events import STREAM_FIELD, ConsumerGroup, Event, EventType

PAYMENTS = "payment:events"
PROCESSOR = ConsumerGroup.PAYMENT_PROCESSOR
DISPATCHER = ConsumerGroup.WEBHOOK_DISPATCHER

_SCRIPT = Path(sys.executable).parent / "payctl"
PAYCTL_COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "payctl"]
# Variables payctl reads that the test process may have: each test states its own.
_SCRUBBED = (
    "REDIS_URL",
    "DATABASE_URL",
    "API_PORT",
    "PROCESSOR_PORT",
    "DISPATCHER_PORT",
    "NOTIFIER_PORT",
    "JWT_SECRET",
    "PAYSTREAM_DATA_DIR",
    "STREAM_SHARDS",
    "REDIS_CLUSTER",
)
# Where payctl looks for a running `make run`'s stores: nowhere, unless a test says otherwise (a
# developer's own `make run` must not leak into the tests).
NO_DEVRUN_DIR = "/nonexistent/paystream-test-data"


@dataclass(frozen=True)
class PayctlResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        assert self.returncode in (0, 1), f"payctl failed ({self.returncode}): {self.stderr}"
        return orjson.loads(self.stdout)


Payctl = Callable[..., Awaitable[PayctlResult]]


def payctl_environment(overrides: Mapping[str, str]) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _SCRUBBED and not key.startswith("PAYCTL_")
    }
    return {**env, "PAYSTREAM_DATA_DIR": NO_DEVRUN_DIR, **overrides}


async def run_payctl(
    *args: str, env: Mapping[str, str], timeout: float = 30, cwd: Path | None = None
) -> PayctlResult:
    process = await asyncio.create_subprocess_exec(
        *PAYCTL_COMMAND,
        *args,
        env=payctl_environment(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return PayctlResult(process.returncode, stdout.decode(), stderr.decode())


def payment_event(event_type: EventType, merchant_id: str, payment_id: str, status: str) -> Event:
    payment = {"id": payment_id, "status": status, "amount": 5000, "currency": "INR"}
    return Event(
        type=event_type, merchant_id=merchant_id, data={"payment": payment}, invoice_id=f"ord_{payment_id}"
    )


async def publish(redis: aioredis.Redis, stream: str, event: Event, entry_id: str = "*") -> str:
    added = await redis.xadd(stream, {STREAM_FIELD: event.encode()}, id=entry_id)
    return added.decode() if isinstance(added, bytes) else str(added)


@dataclass(frozen=True)
class BusState:
    """payment:events holds three entries, added 120 s, 60 s and 1 s ago:

    - `payment-processor` (consumer c1) was delivered the first two and acknowledged the second: the
      first is pending, idle 90 s, delivered 3 times; the third is not delivered yet (lag 1);
    - `webhook-dispatcher` handled all three with the real consumer runtime and dead-lettered the
      third (PermanentError), so payment:events:dlq holds one entry.
    """

    entry_ids: list[str]
    events: list[Event]
    dead_letter_id: str
    now_ms: int


DEAD_LETTER_ERROR = "merchant mer_b has no webhook endpoint"
