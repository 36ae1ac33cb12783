"""Which outbound URLs and addresses Paystream may call: the guard against server-side request forgery.

Merchant webhook URLs are checked twice, with the same functions: when the merchant configures them
(the API) and when the dispatcher connects (its resolver hands the HTTP client only addresses that
passed, so a DNS answer that changes between the two checks, DNS rebinding, cannot reach an internal
address).

- `parse_outbound_url` reads a URL with yarl, the parser aiohttp sends with, so the host judged is
  the host connected to. A URL that another parser would read differently (backslashes, control
  characters, percent-encoded or legacy numeric hosts, IPv6 zone ids) is refused outright.
- `OutboundPolicy` says which addresses may be reached: globally routable unicast ones, plus the
  private networks an operator lists (`WEBHOOK_ALLOWED_PRIVATE_NETS`; `make run` and the tests list
  loopback). Link-local addresses and the cloud metadata endpoints stay refused even inside a listed
  network; only an entry that itself lies in link-local space, or is exactly a metadata address,
  opens them, so `10.0.0.0/8` or `0.0.0.0/0` never reaches 169.254.169.254 by accident.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass

from yarl import URL

ALLOWED_SCHEMES = ("http", "https")
MAX_URL_LENGTH = 2048
# What `make run` and the test fixtures allow: receivers on this machine, nothing else private.
LOOPBACK_NETS = "127.0.0.0/8,::1/128"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Metadata services; not all of them sit in link-local space (Alibaba's is in CGNAT space, AWS's
# IPv6 one in a unique-local range), so a broad private entry must not open them either.
METADATA_ADDRESSES: frozenset[IPAddress] = frozenset(
    {
        ipaddress.ip_address("169.254.169.254"),
        ipaddress.ip_address("169.254.170.2"),
        ipaddress.ip_address("100.100.100.200"),
        ipaddress.ip_address("fd00:ec2::254"),
    }
)
LINK_LOCAL_NETS: tuple[IPNetwork, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
)
_LIMITED_BROADCAST = ipaddress.IPv4Address("255.255.255.255")
# Names as aiohttp resolves them once yarl has IDNA-encoded and lowercased them.
_HOST_NAME = re.compile(r"[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?")
# A last label of digits or 0x-hex makes the system resolver read the whole name as an IPv4 number.
_NUMERIC_LABEL = re.compile(r"(0x[0-9a-f]*|[0-9]+)")


class UnsafeUrlError(ValueError):
    """The URL is malformed, not http(s), or leads to an address Paystream must not call."""


@dataclass(frozen=True, slots=True)
class OutboundUrl:
    """A URL as the HTTP client will send it: `url` is the parsed form to hand to aiohttp."""

    url: URL
    scheme: str
    # As aiohttp connects to it: IDNA-encoded, lowercased, IPv6 without brackets.
    host: str
    port: int
    # The host when it is an IP literal (aiohttp then connects without asking its resolver).
    address: IPAddress | None


def parse_outbound_url(url: str) -> OutboundUrl:
    """Read the URL the way aiohttp will and check its shape (scheme, host, port, length).

    Raises `UnsafeUrlError`. Says nothing about the addresses; `OutboundPolicy` judges those."""
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrlError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        raise UnsafeUrlError("the URL contains whitespace or control characters")
    # RFC 3986 has no raw backslash anywhere; WHATWG parsers read one as `/`, so the URL would
    # mean different hosts to different readers.
    if "\\" in url:
        raise UnsafeUrlError("the URL contains a backslash")
    try:
        parsed = URL(url)
        port = parsed.port
    except ValueError as exc:
        raise UnsafeUrlError(f"the URL is malformed: {exc}") from None
    scheme = parsed.scheme
    if scheme not in ALLOWED_SCHEMES or not parsed.absolute:
        raise UnsafeUrlError("the URL must be absolute and use http or https")
    host = parsed.raw_host or ""
    if not host:
        raise UnsafeUrlError("the URL has no host")
    if not port:
        raise UnsafeUrlError("the URL's port must be between 1 and 65535")
    return OutboundUrl(url=parsed, scheme=scheme, host=host, port=port, address=_host_address(host))


def _host_address(host: str) -> IPAddress | None:
    """The IP literal `host` stands for, None for a name; refuses hosts that are neither cleanly."""
    # aiohttp's own test: a colon means IPv6, digits and dots mean IPv4; either skips its resolver.
    if ":" in host:
        if "%" in host:
            raise UnsafeUrlError("the URL's host has an IPv6 zone id")
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise UnsafeUrlError(f"the URL's host {host!r} is not a valid IPv6 address") from None
    if host.replace(".", "").isdigit() or _NUMERIC_LABEL.fullmatch(host.rstrip(".").rsplit(".", 1)[-1]):
        try:
            # Accepts only the canonical dotted quad: no octal, hex, short or single-number forms.
            return ipaddress.IPv4Address(host)
        except ValueError:
            raise UnsafeUrlError(
                f"the URL's host {host!r} reads as a number but is not a canonical IPv4 address"
            ) from None
    if not _HOST_NAME.fullmatch(host):
        raise UnsafeUrlError(f"the URL's host {host!r} is not a valid host name")
    return None


def _plain_address(address: IPAddress | str) -> IPAddress:
    if isinstance(address, str):
        return ipaddress.ip_address(address.split("%", 1)[0])
    return address


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address that an IPv4-mapped, 6to4 or Teredo IPv6 address leads to."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    return ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)


def _is_link_local_or_metadata(ip: IPAddress) -> bool:
    return ip in METADATA_ADDRESSES or any(ip in net for net in LINK_LOCAL_NETS)


def _is_public(ip: IPAddress) -> bool:
    """Globally routable unicast, and no tunnel address that leads somewhere that is not."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None and not _is_public(embedded):
        return False
    site_local = isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local
    return bool(ip.is_global) and not (ip.is_loopback or ip.is_reserved or site_local)


def _opens_link_local_or_metadata(net: IPNetwork) -> bool:
    """Whether a listed network names link-local or metadata space itself (not merely contains it)."""
    if net.num_addresses == 1 and net.network_address in METADATA_ADDRESSES:
        return True
    return any(
        net.version == link_local.version and net.subnet_of(link_local)  # type: ignore[arg-type]
        for link_local in LINK_LOCAL_NETS
    )


@dataclass(frozen=True, slots=True)
class OutboundPolicy:
    """The addresses outbound calls may reach: public ones, plus `allowed_private_nets`."""

    allowed_private_nets: tuple[IPNetwork, ...] = ()

    @classmethod
    def from_cidr_list(cls, cidrs: str) -> OutboundPolicy:
        """From comma-separated CIDRs (a bare address is a /32 or /128; empty entries are skipped).

        Raises ValueError naming the first entry that is not a network."""
        nets = []
        for entry in (part.strip() for part in cidrs.split(",")):
            if not entry:
                continue
            try:
                nets.append(ipaddress.ip_network(entry, strict=True))
            except ValueError as exc:
                raise ValueError(f"{entry!r} is not a network in CIDR notation ({exc})") from None
        return cls(tuple(nets))

    def refusal(self, address: IPAddress | str) -> str | None:
        """Why `address` may not be called (to follow "<address> is ..."), or None when it may."""
        ip = _plain_address(address)
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            # A mapped address is the IPv4 host it carries, and is judged as that host.
            ip = ip.ipv4_mapped
        if ip.is_unspecified or ip.is_multicast or ip == _LIMITED_BROADCAST:
            return "not a unicast address"
        embedded = _embedded_ipv4(ip)
        if _is_link_local_or_metadata(ip) or (embedded is not None and _is_link_local_or_metadata(embedded)):
            if any(ip in net and _opens_link_local_or_metadata(net) for net in self.allowed_private_nets):
                return None
            return "a link-local or cloud metadata address"
        if _is_public(ip) or any(ip in net for net in self.allowed_private_nets):
            return None
        return "not a public address"

    def check_address(self, address: IPAddress | str) -> None:
        """Raise `UnsafeUrlError` unless `address` may be called."""
        reason = self.refusal(address)
        if reason is not None:
            raise UnsafeUrlError(f"{_plain_address(address)} is {reason}")

    async def resolve(self, target: OutboundUrl, *, timeout: float = 5.0) -> list[str]:
        """The target's addresses, refusing (`UnsafeUrlError`) when any of them may not be called.

        The check at configuration time; the dispatcher's resolver applies the same `refusal`
        to the addresses it connects to."""
        if target.address is not None:
            self.check_address(target.address)
            return [str(target.address)]
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError) as exc:
            raise UnsafeUrlError(f"the host {target.host!r} could not be resolved") from exc
        addresses = sorted({str(info[4][0]) for info in infos})
        if not addresses:
            raise UnsafeUrlError(f"the host {target.host!r} could not be resolved")
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                raise UnsafeUrlError(f"the host {target.host!r} resolves to {address}, which is {reason}")
        return addresses


PUBLIC_ONLY = OutboundPolicy()


def is_public_address(address: IPAddress | str) -> bool:
    """True only for addresses the strictest policy (no private networks listed) lets through."""
    return PUBLIC_ONLY.refusal(address) is None


async def check_outbound_url(url: str, policy: OutboundPolicy, *, timeout: float = 5.0) -> OutboundUrl:
    """Parse `url` and resolve its host under `policy`: the whole configuration-time check."""
    target = parse_outbound_url(url)
    await policy.resolve(target, timeout=timeout)
    return target
