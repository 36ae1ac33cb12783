"""The client's address behind reverse proxies the operator trusts (`TRUSTED_PROXIES`).

Per-address budgets (failed authentications, the checkout's public endpoints, dashboard sign-ins)
must count clients, not the Ingress or load balancer in front of them, yet `X-Forwarded-For` is a
header anyone can send. So it is believed only from a TCP peer inside a trusted network, and only
as far as trusted hands wrote it:

- The peer is not trusted (the default: nothing is): the client is the peer, whatever it sends.
- The peer is trusted: `X-Forwarded-For` (several such headers are one list, in order) is walked
  from the right, the end the nearest proxy appended, past the hops that are themselves trusted
  proxies; the first address that is not is the client. What lies left of it was written by that
  client or by proxies it chose, and is never read.
- The header is absent, an examined entry is not an IP address (NUL, bytes that were not UTF-8,
  non-ASCII digits, zero-padded octets, a scope id, a name), the header is absurdly long, or every
  hop within `MAX_HOPS` is trusted: the client is the peer. Nothing here raises on input.

Addresses come out in one canonical text form (`ipaddress`'s, IPv4-mapped IPv6 as the IPv4 address
it carries, no scope id), so one client is one budget key however a proxy spells it. An entry may
carry a port as some load balancers write it (`192.0.2.1:443`, `[2001:db8::1]:443`); the port is
dropped.

`Forwarded` (RFC 7239) is not read: the proxies in use (ingress-nginx, cloud load balancers) write
`X-Forwarded-For`, and a second header that a proxy passes through untouched would be a second
place for a client to choose its own address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass

from paystream.netguard import IPAddress, IPNetwork

FORWARDED_FOR_HEADER = "X-Forwarded-For"
# Hops examined from the right: a real chain has a handful (CDN, load balancer, Ingress).
MAX_HOPS = 16
# The whole list, all headers together; longer is no proxy chain and is not read at all.
MAX_FORWARDED_FOR_LENGTH = 2048
# The longest spelling of an entry: a full IPv6 address with an embedded IPv4 one, in brackets,
# with a port.
_MAX_ENTRY_LENGTH = 64
# What an address may be spelt with (hex digits, dots, colons), optionally `[v6]`, `[v6]:port` or
# `v4:port`; anything else (a scope id, whitespace, a name) is not an address.
_ADDRESS = re.compile(r"[0-9A-Fa-f:.]{2,45}")
_BRACKETED = re.compile(r"\[([0-9A-Fa-f:.]{2,45})\](?::[0-9]{1,5})?")
_IPV4_WITH_PORT = re.compile(r"([0-9.]{7,15}):[0-9]{1,5}")
# The header's list separator and the optional whitespace around its elements (RFC 9110 5.6.1).
_OWS = " \t"
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")


def normalise(ip: IPAddress) -> IPAddress:
    """One form per host: an IPv4-mapped IPv6 address is the IPv4 address it carries; no scope id."""
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
        if ip.scope_id is not None:
            return ipaddress.IPv6Address(int(ip))
    return ip


def parse_peer(peer: str | None) -> IPAddress | None:
    """The TCP peer's address as the server socket reports it (a link-local one may carry a scope
    id), normalised; None when it is not an IP address (a Unix socket)."""
    if not peer:
        return None
    try:
        return normalise(ipaddress.ip_address(peer))
    except ValueError:
        return None


def parse_forwarded_entry(entry: str) -> IPAddress | None:
    """One element of `X-Forwarded-For` (whitespace already stripped) as an address, normalised;
    None for anything that is not plainly one."""
    if len(entry) > _MAX_ENTRY_LENGTH:
        return None
    if (bracketed := _BRACKETED.fullmatch(entry)) is not None:
        candidate = bracketed.group(1)
        if ":" not in candidate:
            return None  # brackets hold IPv6 only
    elif (with_port := _IPV4_WITH_PORT.fullmatch(entry)) is not None:
        candidate = with_port.group(1)
    elif _ADDRESS.fullmatch(entry) is not None:
        candidate = entry
    else:
        return None
    try:
        # The standard library refuses zero-padded IPv4 octets, over-long hextets and non-ASCII
        # digits; the pattern above has already refused everything that is not hex, `.` or `:`.
        return normalise(ipaddress.ip_address(candidate))
    except ValueError:
        return None


def parse_trusted_proxies(entries: str) -> tuple[IPNetwork, ...]:
    """Comma-separated addresses and CIDR networks, IPv4 and IPv6 (a bare address is a /32 or
    /128; empty entries are skipped). Raises ValueError naming the first entry refused: not an
    address or network (host bits set count: `10.0.0.1/8` is ambiguous), a network of every address
    (`0.0.0.0/0`, `::/0`: anyone could then choose its own address), or IPv4-mapped IPv6 (peers and
    hops are compared as IPv4: write the IPv4 network)."""
    networks: list[IPNetwork] = []
    for entry in (part.strip() for part in entries.split(",")):
        if not entry:
            continue
        try:
            network = ipaddress.ip_network(entry, strict=True)
        except ValueError as exc:
            raise ValueError(
                f"{entry!r} is not an IP address or a network in CIDR notation ({exc})"
            ) from None
        if network.prefixlen == 0:
            raise ValueError(f"{entry!r} would trust every address, so any client could choose its own")
        if isinstance(network, ipaddress.IPv6Network) and network.subnet_of(_IPV4_MAPPED):
            raise ValueError(f"{entry!r} is IPv4-mapped IPv6: write it as the IPv4 address or network")
        networks.append(network)
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """The networks whose peers' `X-Forwarded-For` is believed (none by default)."""

    networks: tuple[IPNetwork, ...] = ()

    @classmethod
    def parse(cls, entries: str) -> TrustedProxies:
        """See `parse_trusted_proxies`; raises ValueError naming the entry refused."""
        return cls(parse_trusted_proxies(entries))

    def trusts(self, ip: IPAddress) -> bool:
        """Whether `ip` (normalised) is a trusted proxy."""
        return any(ip.version == network.version and ip in network for network in self.networks)

    def client_address(self, peer: str | None, forwarded_for: Iterable[str] = ()) -> str:
        """The client's address, given the TCP peer's and the `X-Forwarded-For` headers' values in
        the order received (see the module doc). Never raises; a peer that is not an IP address
        (a Unix socket) is answered as given, or `unknown`."""
        peer_ip = parse_peer(peer)
        if peer_ip is None:
            return peer or "unknown"
        if not self.networks or not self.trusts(peer_ip):
            return str(peer_ip)
        header = _joined(forwarded_for)
        if header is None:
            return str(peer_ip)
        for entry in reversed(header.rsplit(",", MAX_HOPS)[-MAX_HOPS:]):
            stripped = entry.strip(_OWS)
            if not stripped:
                continue  # the list syntax allows empty elements
            hop = parse_forwarded_entry(stripped)
            if hop is None:
                return str(peer_ip)
            if not self.trusts(hop):
                return str(hop)
        return str(peer_ip)


def _joined(values: Iterable[str]) -> str | None:
    """The headers' values as one list, or None when there is none or it is too long to be one."""
    parts: list[str] = []
    length = 0
    for value in values:
        length += len(value) + 1
        if length > MAX_FORWARDED_FOR_LENGTH + 1:
            return None
        parts.append(value)
    return ",".join(parts) if parts else None


TRUST_NOBODY = TrustedProxies()
