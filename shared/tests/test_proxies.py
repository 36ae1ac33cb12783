"""Client addresses behind trusted proxies: how `TRUSTED_PROXIES` is read, how `X-Forwarded-For` is
walked, and (property-based) that no header, however malformed, raises or names a trusted proxy."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paystream.errors import SettingsError
from paystream.proxies import (
    MAX_FORWARDED_FOR_LENGTH,
    MAX_HOPS,
    TRUST_NOBODY,
    TrustedProxies,
    parse_forwarded_entry,
    parse_peer,
)
from paystream.settings import env_trusted_proxies

LOOPBACK = TrustedProxies.parse("127.0.0.0/8,::1")
# An Ingress in a pod network behind a load balancer with public addresses of its own.
CHAIN = TrustedProxies.parse("127.0.0.1, 10.244.0.0/16, 198.51.100.0/28, 2001:db8:ff::/48")
CLIENT = "203.0.113.7"


# --- TRUSTED_PROXIES --------------------------------------------------------------------------


def test_unset_or_empty_trusts_nobody() -> None:
    assert env_trusted_proxies({}) is TRUST_NOBODY
    assert env_trusted_proxies({"TRUSTED_PROXIES": ""}) is TRUST_NOBODY
    assert env_trusted_proxies({"TRUSTED_PROXIES": " , "}) is TRUST_NOBODY


def test_addresses_and_networks_of_both_families_are_read() -> None:
    proxies = env_trusted_proxies({"TRUSTED_PROXIES": " 10.0.0.0/8 ,192.0.2.1,, fd00::/8, ::1 "})
    assert [str(network) for network in proxies.networks] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "fd00::/8",
        "::1/128",
    ]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("10.0.0.0/8,10.0.0.1/8", "'10.0.0.1/8' is not an IP address or a network"),
        ("proxy.internal", "'proxy.internal' is not an IP address"),
        ("010.0.0.1", "'010.0.0.1' is not an IP address"),
        ("10.0.0.0/33", "'10.0.0.0/33' is not"),
        ("0.0.0.0/0", "'0.0.0.0/0' would trust every address"),
        ("::/0", "'::/0' would trust every address"),
        ("::ffff:10.0.0.0/104", "'::ffff:10.0.0.0/104' is IPv4-mapped IPv6"),
        ("10.0.0.1\x00", "is not an IP address"),
    ],
)
def test_a_bad_entry_stops_start_up_naming_the_variable_and_the_entry(value: str, reason: str) -> None:
    with pytest.raises(SettingsError) as refused:
        env_trusted_proxies({"TRUSTED_PROXIES": value})
    assert str(refused.value).startswith("TRUSTED_PROXIES: ")
    assert reason in str(refused.value)


# --- the walk ---------------------------------------------------------------------------------


def test_trusting_nobody_the_client_is_the_peer_whatever_it_sends() -> None:
    assert TRUST_NOBODY.client_address("127.0.0.1", [CLIENT]) == "127.0.0.1"
    assert TRUST_NOBODY.client_address("2001:db8::5", [CLIENT]) == "2001:db8::5"


def test_an_untrusted_peer_is_the_client_whatever_it_sends() -> None:
    assert LOOPBACK.client_address("192.0.2.10", [CLIENT]) == "192.0.2.10"
    assert LOOPBACK.client_address("192.0.2.10", ["127.0.0.1"]) == "192.0.2.10"


def test_a_trusted_peer_names_the_client() -> None:
    assert LOOPBACK.client_address("127.0.0.1", [CLIENT]) == CLIENT
    assert LOOPBACK.client_address("::1", ["2001:db8::42"]) == "2001:db8::42"


def test_the_walk_skips_trusted_hops_and_stops_at_the_first_untrusted_address_from_the_right() -> None:
    header = f"192.0.2.66, {CLIENT}, 198.51.100.3, 10.244.3.9"
    assert CHAIN.client_address("10.244.0.12", [header]) == CLIENT
    # What the client wrote itself, left of its own address, is never read.
    assert CHAIN.client_address("10.244.0.12", [f"junk, 127.0.0.1, {CLIENT}, 10.244.3.9"]) == CLIENT


def test_several_headers_are_one_list_in_order() -> None:
    assert (
        CHAIN.client_address("127.0.0.1", ["192.0.2.66", f"{CLIENT}, 10.244.3.9", "198.51.100.3"]) == CLIENT
    )
    assert CHAIN.client_address("127.0.0.1", [f"192.0.2.66, {CLIENT}", ""]) == CLIENT


def test_no_header_or_every_hop_trusted_is_the_peer() -> None:
    assert LOOPBACK.client_address("127.0.0.1", []) == "127.0.0.1"
    assert LOOPBACK.client_address("127.0.0.1", [""]) == "127.0.0.1"
    assert LOOPBACK.client_address("127.0.0.1", [" , ,"]) == "127.0.0.1"
    assert CHAIN.client_address("127.0.0.1", ["10.244.1.1, 198.51.100.2"]) == "127.0.0.1"


@pytest.mark.parametrize(
    "header",
    [
        "not-an-address",
        "203.0.113.007",  # zero-padded: another reader could see octal
        "203.0.113.7\x00",
        "203.0.113.7\udcff",  # a byte that was not UTF-8, as aiohttp hands it over
        "\uff12\uff10\uff13.0.113.7",  # fullwidth digits
        "fe80::1%eth0",  # a scope id means nothing beyond its host
        "[203.0.113.7]",
        "203.0.113.7 198.51.100.9",
        "2001:db8::1:",
        "1" * 200,
        "unknown",  # what some proxies write for an address they do not know
        "_hidden",
    ],
)
def test_a_malformed_examined_entry_is_the_peer(header: str) -> None:
    assert LOOPBACK.client_address("127.0.0.1", [header]) == "127.0.0.1"
    assert LOOPBACK.client_address("127.0.0.1", [f"{CLIENT}, {header}"]) == "127.0.0.1"
    # Left of the client's address it is never examined.
    assert LOOPBACK.client_address("127.0.0.1", [f"{header}, {CLIENT}"]) == CLIENT


def test_an_absurdly_long_list_is_not_read() -> None:
    padding = "192.0.2.1, " * (MAX_FORWARDED_FOR_LENGTH // 11 + 1)
    assert LOOPBACK.client_address("127.0.0.1", [padding + CLIENT]) == "127.0.0.1"
    assert LOOPBACK.client_address("127.0.0.1", [padding, CLIENT]) == "127.0.0.1"


def test_at_most_max_hops_are_walked() -> None:
    trusted_hops = ", ".join(["127.0.0.2"] * (MAX_HOPS - 1))
    assert LOOPBACK.client_address("127.0.0.1", [f"{CLIENT}, {trusted_hops}"]) == CLIENT
    assert LOOPBACK.client_address("127.0.0.1", [f"{CLIENT}, {trusted_hops}, 127.0.0.3"]) == "127.0.0.1"


@pytest.mark.parametrize(
    ("entry", "address"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("203.0.113.7:51234", "203.0.113.7"),
        ("2001:DB8:0:0::1", "2001:db8::1"),
        ("[2001:db8::1]", "2001:db8::1"),
        ("[2001:db8::1]:443", "2001:db8::1"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("::FFFF:cb00:7107", "203.0.113.7"),
        ("[::ffff:203.0.113.7]:80", "203.0.113.7"),
    ],
)
def test_entries_come_out_in_one_canonical_form(entry: str, address: str) -> None:
    assert LOOPBACK.client_address("127.0.0.1", [entry]) == address


def test_peers_are_normalised_and_mapped_peers_are_judged_as_ipv4() -> None:
    assert LOOPBACK.client_address("::ffff:127.0.0.1", [CLIENT]) == CLIENT
    assert TRUST_NOBODY.client_address("::ffff:192.0.2.1", [CLIENT]) == "192.0.2.1"
    assert TRUST_NOBODY.client_address("fe80::1%eth0") == "fe80::1"
    assert TRUST_NOBODY.client_address(None) == "unknown"
    assert TRUST_NOBODY.client_address("") == "unknown"


def test_a_mapped_trusted_hop_is_skipped_like_its_ipv4_form() -> None:
    assert LOOPBACK.client_address("127.0.0.1", [f"{CLIENT}, ::ffff:127.0.0.9"]) == CLIENT


# --- properties -------------------------------------------------------------------------------

PEERS = st.one_of(
    st.ip_addresses(v=4, network="127.0.0.0/8"),
    st.just(ipaddress.ip_address("::1")),
    st.ip_addresses(network="10.244.0.0/16"),
    st.ip_addresses(),  # mostly untrusted
).map(str)
ADDRESS_TEXT = st.ip_addresses().map(str)
# What an entry may look like: addresses, trusted or not, mangled ones, and anything at all.
ENTRIES = st.one_of(
    ADDRESS_TEXT,
    st.sampled_from(["127.0.0.1", "::1", "10.244.0.5", "::ffff:10.244.9.9", "", " ", "unknown"]),
    ADDRESS_TEXT.map(lambda text: f"[{text}]:443"),
    st.text(alphabet="0123456789abcdefABCDEF:.[]%, \t", max_size=50),
    st.text(max_size=50),
    st.binary(max_size=60).map(lambda raw: raw.decode("utf-8", "surrogateescape")),
)
HEADERS = st.lists(st.lists(ENTRIES, max_size=20).map(", ".join), max_size=4)
PROPERTY_SETTINGS = settings(max_examples=200, deadline=None)


def _is_canonical_address(text: str) -> bool:
    ip = ipaddress.ip_address(text)
    mapped = isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None
    return str(ip) == text and not mapped


@PROPERTY_SETTINGS
@given(peer=PEERS, headers=HEADERS)
def test_any_header_gives_a_canonical_address_that_is_the_peer_or_an_untrusted_hop(
    peer: str, headers: list[str]
) -> None:
    for proxies in (TRUST_NOBODY, LOOPBACK, CHAIN):
        client = proxies.client_address(peer, headers)
        assert _is_canonical_address(client)
        peer_address = proxies.client_address(peer, [])
        if client != peer_address:
            # Only a trusted peer's header is believed, and it never names a trusted proxy.
            assert proxies.trusts(ipaddress.ip_address(peer_address))
            assert not proxies.trusts(ipaddress.ip_address(client))


@PROPERTY_SETTINGS
@given(peer=PEERS, raw=st.lists(st.binary(max_size=300), max_size=4))
def test_arbitrary_bytes_never_raise(peer: str, raw: list[bytes]) -> None:
    headers = [value.decode("utf-8", "surrogateescape") for value in raw]
    assert _is_canonical_address(CHAIN.client_address(peer, headers))
    assert _is_canonical_address(LOOPBACK.client_address(peer, headers))


@PROPERTY_SETTINGS
@given(peer=PEERS, headers=HEADERS)
def test_an_untrusted_peer_is_always_the_client(peer: str, headers: list[str]) -> None:
    peer_ip = parse_peer(peer)
    assert peer_ip is not None
    if not CHAIN.trusts(peer_ip):
        assert CHAIN.client_address(peer, headers) == str(peer_ip)


@PROPERTY_SETTINGS
@given(entry=st.text(max_size=80))
def test_an_entry_is_an_address_or_none(entry: str) -> None:
    parsed = parse_forwarded_entry(entry)
    assert parsed is None or _is_canonical_address(str(parsed))


@PROPERTY_SETTINGS
@given(client=st.ip_addresses(), hops=st.lists(st.ip_addresses(network="10.244.0.0/16"), max_size=5))
def test_a_client_behind_trusted_hops_is_found(
    client: ipaddress.IPv4Address | ipaddress.IPv6Address, hops: list[ipaddress.IPv4Address]
) -> None:
    expected = (
        client.ipv4_mapped if isinstance(client, ipaddress.IPv6Address) and client.ipv4_mapped else client
    )
    header = ", ".join(str(address) for address in [client, *hops])
    found = CHAIN.client_address("10.244.0.1", [header])
    assert found == (str(expected) if not CHAIN.trusts(expected) else "10.244.0.1")
