"""One platform under fault injection, as a test sees it: its processes, stores, load, merchant
receiver and frontend, and the final check that everything accepted took effect exactly once."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis
from invariants import verify_exactly_once, wait_until_drained
from load import SteadyLoad
from merchant_receiver import MerchantReceiver, ReceivingEndpoint
from platform_stack import PaymentWatcher, Stack

# The merchant's invoices the load spreads its payments over (and the frontend watches).
INVOICES = tuple(f"inv_chaos_{n}" for n in range(4))


@dataclass
class Scenario:
    """One platform under test: its processes, stores, load, merchant and frontend."""

    stack: Stack
    pool: asyncpg.Pool
    redis: aioredis.Redis
    load: SteadyLoad
    receiver: MerchantReceiver | None
    watcher: PaymentWatcher | None

    async def close(self) -> None:
        """Stop the load, the frontend and the merchant's receiver (the processes are the stack's)."""
        await self.load.close()
        if self.watcher is not None:
            await self.watcher.close()
        if self.receiver is not None:
            await self.receiver.stop()

    async def settle_and_verify(self, *, drain_timeout: float = 40.0) -> float:
        """Let every request finish (retries included), wait until nothing is left in flight, and
        check that everything accepted took effect exactly once. Returns the drain time."""
        await self.load.settle(timeout=self.load.give_up_after_s + 15)
        drained_in = await wait_until_drained(
            self.pool, self.redis, self.load, self.watcher, timeout=drain_timeout
        )
        await verify_exactly_once(self.pool, self.redis, self.load, self.receiver, self.watcher)
        return drained_in


ScenarioFactory = Callable[..., Awaitable[Scenario]]
EndpointFactory = Callable[..., Awaitable[ReceivingEndpoint]]
