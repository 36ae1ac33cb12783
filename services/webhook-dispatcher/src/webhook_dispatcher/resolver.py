"""The HTTP client's resolver: it hands aiohttp only addresses that pass the outbound policy.

aiohttp connects to exactly the addresses its resolver returns, so checking them here (rather than
resolving once to check and again to connect) leaves no room for DNS rebinding. IP-literal hosts
skip the resolver in aiohttp; `delivery.py` checks those itself.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from paystream.netguard import OutboundPolicy


class BlockedAddressError(OSError):
    """The host resolves to an address webhooks must not reach."""


class GuardedResolver(AbstractResolver):
    def __init__(self, policy: OutboundPolicy) -> None:
        self._inner = ThreadedResolver()
        self._policy = policy

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        # One refused address refuses the host, as at configuration time: connecting to the
        # permitted ones only would make delivery depend on which answer came first.
        for result in results:
            reason = self._policy.refusal(result["host"])
            if reason is not None:
                raise BlockedAddressError(f"{host} resolves to {result['host']}, which is {reason}")
        return results

    async def close(self) -> None:
        await self._inner.close()
