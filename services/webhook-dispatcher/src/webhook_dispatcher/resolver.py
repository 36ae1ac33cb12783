"""The HTTP client's resolver: it hands aiohttp only addresses that passed the outbound URL policy.

aiohttp connects to exactly the addresses its resolver returns, so checking them here (rather than
resolving once to check and again to connect) leaves no room for DNS rebinding. IP-literal hosts
skip the resolver in aiohttp; `delivery.py` checks those itself.
"""

from __future__ import annotations

import socket

from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from paystream.netguard import is_public_address


class BlockedAddressError(OSError):
    """The host resolves to an address webhooks must not reach."""


class GuardedResolver(AbstractResolver):
    def __init__(self, *, allow_private: bool) -> None:
        self._inner = ThreadedResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        if self._allow_private:
            return results
        for result in results:
            if not is_public_address(result["host"]):
                raise BlockedAddressError(
                    f"{host} resolves to {result['host']}, which is not a public address"
                )
        return results

    async def close(self) -> None:
        await self._inner.close()
