"""Which outbound URLs and addresses Paystream may call: the guard against server-side request forgery.

Merchant webhook URLs are checked twice: when the merchant configures them (the API) and when the
dispatcher connects (its resolver hands the HTTP client only addresses that passed, so a DNS answer
that changes between the two checks, DNS rebinding, cannot reach an internal address). Only http and
https, and only globally routable unicast addresses: no loopback, private, shared (CGNAT), link-local
(which holds the cloud metadata endpoints), multicast, reserved or unspecified ones.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

ALLOWED_SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048

# Metadata services that do not sit in a non-global range on every cloud.
_METADATA_ADDRESSES = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrlError(ValueError):
    """The URL is malformed, not http(s), or leads to an address Paystream must not call."""


@dataclass(frozen=True, slots=True)
class OutboundUrl:
    url: str
    scheme: str
    host: str
    port: int


def parse_outbound_url(url: str) -> OutboundUrl:
    """Check the URL's shape (scheme, host, port, length); raises `UnsafeUrlError`."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() for ch in url):
        raise UnsafeUrlError("the URL contains whitespace")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrlError(f"the URL is malformed: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrlError("the URL must use http or https")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeUrlError("the URL has no host")
    return OutboundUrl(url=url, scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80))


def literal_address(host: str) -> IPAddress | None:
    """The host as an IP address when it is one (brackets and zone ids removed), else None."""
    candidate = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(candidate)
    except ValueError:
        return None


def is_public_address(address: IPAddress | str) -> bool:
    """True only for globally routable unicast addresses that are no metadata endpoint."""
    ip = ipaddress.ip_address(address.split("%", 1)[0]) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return is_public_address(ip.ipv4_mapped)
        embedded = ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not is_public_address(embedded):
            return False
    if ip in _METADATA_ADDRESSES:
        return False
    return bool(ip.is_global) and not (
        ip.is_multicast or ip.is_loopback or ip.is_link_local or ip.is_reserved or ip.is_unspecified
    )


async def resolve_public_addresses(host: str, port: int, *, timeout: float = 5.0) -> list[str]:
    """Resolve `host` and return its addresses, refusing (UnsafeUrlError) when any is not public."""
    literal = literal_address(host)
    if literal is not None:
        if not is_public_address(literal):
            raise UnsafeUrlError(f"{literal} is not a public address")
        return [str(literal)]
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(timeout):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError) as exc:
        raise UnsafeUrlError(f"the host {host!r} could not be resolved") from exc
    addresses = sorted({str(info[4][0]) for info in infos})
    if not addresses:
        raise UnsafeUrlError(f"the host {host!r} could not be resolved")
    for address in addresses:
        if not is_public_address(address):
            raise UnsafeUrlError(f"the host {host!r} resolves to {address}, which is not a public address")
    return addresses
