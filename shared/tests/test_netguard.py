"""The outbound policy: how URLs are read (as aiohttp reads them), which addresses each list of
private networks opens, and how `WEBHOOK_ALLOWED_PRIVATE_NETS` is configured."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from paystream.errors import SettingsError
from paystream.netguard import (
    LOOPBACK_NETS,
    PUBLIC_ONLY,
    OutboundPolicy,
    UnsafeUrlError,
    check_outbound_url,
    parse_outbound_url,
)
from paystream.settings import OutboundSettings
from paystream_devstack.testing.outbound_urls import DEV_MODE_URL_CASES, UrlCase

DEV_MODE = OutboundPolicy.from_cidr_list(LOOPBACK_NETS)
PORT = 8080


def _ids(case: UrlCase) -> str:
    return case.why


# --- the shared table: one reading of each URL, one verdict ----------------------------------------


@pytest.mark.parametrize("case", DEV_MODE_URL_CASES, ids=_ids)
async def test_each_url_is_read_as_the_client_sends_it_and_judged_under_dev_mode(case: UrlCase) -> None:
    url = case.url(PORT)
    if case.host is None:
        with pytest.raises(UnsafeUrlError):
            parse_outbound_url(url)
    else:
        assert parse_outbound_url(url).host == case.host
    if case.permitted:
        await check_outbound_url(url, DEV_MODE)
    else:
        with pytest.raises(UnsafeUrlError):
            await check_outbound_url(url, DEV_MODE)


@pytest.mark.parametrize("case", DEV_MODE_URL_CASES, ids=_ids)
async def test_production_refuses_every_url_of_the_table(case: UrlCase) -> None:
    # Every case leads to loopback or worse.
    with pytest.raises(UnsafeUrlError):
        await check_outbound_url(case.url(PORT), PUBLIC_ONLY)


def test_urlsplit_and_the_client_disagree_on_a_backslash_so_it_is_refused() -> None:
    url = "http://127.0.0.1\\@1.1.1.1/"
    assert urlsplit(url).hostname == "1.1.1.1"  # what the old check judged: a public address
    with pytest.raises(UnsafeUrlError, match="backslash"):
        parse_outbound_url(url)


def test_the_parsed_url_is_what_the_client_is_given() -> None:
    target = parse_outbound_url("HTTPS://Bücher.Example:8443/hooks?x=1")
    assert (target.scheme, target.host, target.port, target.address) == (
        "https",
        "xn--bcher-kva.example",
        8443,
        None,
    )
    assert str(target.url) == "https://xn--bcher-kva.example:8443/hooks?x=1"
    assert parse_outbound_url("https://example.com/").port == 443
    assert parse_outbound_url("http://example.com/").port == 80
    # A trailing dot on a name is a fully qualified name, resolved as written.
    assert parse_outbound_url("https://example.com./hooks").host == "example.com."


@pytest.mark.parametrize(
    "url",
    [
        "http://example.123/",
        "http://1.2.3.0x4/",
        "http://exa..mple.com/",
        "http://exa%2emple.com/",
        "http://exa_mple%00.com/",
        "//example.com/hooks",
        "http:///hooks",
        "http://[::1/",
        "http://example.com:99999/",
        "https://example.com/" + "a" * 2100,
    ],
)
def test_malformed_or_ambiguous_urls_are_refused(url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        parse_outbound_url(url)


# --- which networks a list opens -------------------------------------------------------------------


def _policy(cidrs: str) -> OutboundPolicy:
    return OutboundPolicy.from_cidr_list(cidrs)


@pytest.mark.parametrize("cidrs", ["", LOOPBACK_NETS, "10.0.0.0/8", "0.0.0.0/0,::/0"])
@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass_under_every_list(cidrs: str, address: str) -> None:
    assert _policy(cidrs).refusal(address) is None


@pytest.mark.parametrize("cidrs", ["10.0.0.0/8", "0.0.0.0/0,::/0", "100.64.0.0/10,fd00::/8", LOOPBACK_NETS])
@pytest.mark.parametrize(
    "address",
    ["169.254.169.254", "169.254.170.2", "100.100.100.200", "fd00:ec2::254", "169.254.1.1", "fe80::1"],
)
def test_a_broad_list_never_opens_link_local_or_metadata(cidrs: str, address: str) -> None:
    assert _policy(cidrs).refusal(address) == "a link-local or cloud metadata address"


@pytest.mark.parametrize(
    ("cidrs", "opened", "still_refused"),
    [
        ("169.254.169.254/32", "169.254.169.254", "169.254.170.2"),
        ("169.254.169.254", "169.254.169.254", "169.254.169.253"),
        ("169.254.0.0/16", "169.254.170.2", "100.100.100.200"),
        ("100.100.100.200/32", "100.100.100.200", "169.254.169.254"),
        ("fd00:ec2::254/128", "fd00:ec2::254", "fd00:ec2::253"),
        ("fe80::/10", "fe80::1", "169.254.1.1"),
    ],
)
def test_an_entry_naming_link_local_or_metadata_space_opens_it(
    cidrs: str, opened: str, still_refused: str
) -> None:
    policy = _policy(cidrs)
    assert policy.refusal(opened) is None
    assert policy.refusal(still_refused) is not None


def test_a_list_opens_exactly_its_networks() -> None:
    policy = _policy("10.1.0.0/16, fd12::/16")
    assert policy.refusal("10.1.2.3") is None
    assert policy.refusal("::ffff:10.1.2.3") is None  # a mapped address is the IPv4 host it carries
    assert policy.refusal("fd12::1") is None
    for refused in ("10.2.0.1", "192.168.0.1", "127.0.0.1", "::1", "fd13::1"):
        assert policy.refusal(refused) == "not a public address", refused


@pytest.mark.parametrize("address", ["0.0.0.0", "::", "224.0.0.1", "ff02::1", "255.255.255.255"])
def test_unspecified_multicast_and_broadcast_are_never_reachable(address: str) -> None:
    assert _policy("0.0.0.0/0,::/0").refusal(address) == "not a unicast address"


def test_dev_mode_allows_loopback_only() -> None:
    for address in ("127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1"):
        assert DEV_MODE.refusal(address) is None, address
    for address in ("10.0.0.1", "172.16.0.1", "192.168.1.1", "100.64.0.1", "fd00::1", "2002:7f00:1::"):
        assert DEV_MODE.refusal(address) == "not a public address", address


# --- configuration ------------------------------------------------------------------------------------


def test_the_default_is_public_addresses_only() -> None:
    settings = OutboundSettings.from_env({})
    assert settings.policy == PUBLIC_ONLY and settings.notices == ()
    assert OutboundSettings.from_env({"WEBHOOK_ALLOWED_PRIVATE_NETS": ""}).policy == PUBLIC_ONLY


def test_the_list_is_comma_separated_cidrs() -> None:
    settings = OutboundSettings.from_env({"WEBHOOK_ALLOWED_PRIVATE_NETS": " 127.0.0.0/8 , ::1/128,,10.0.0.7"})
    assert [str(net) for net in settings.policy.allowed_private_nets] == [
        "127.0.0.0/8",
        "::1/128",
        "10.0.0.7/32",
    ]


@pytest.mark.parametrize("value", ["10.0.0.1/8", "localhost", "10.0.0.0/33", "127.0.0.0/8;::1"])
def test_a_bad_entry_stops_start_up_naming_the_variable(value: str) -> None:
    with pytest.raises(SettingsError, match="WEBHOOK_ALLOWED_PRIVATE_NETS"):
        OutboundSettings.from_env({"WEBHOOK_ALLOWED_PRIVATE_NETS": value})


def test_the_deprecated_switch_means_loopback_only_and_says_so() -> None:
    legacy = OutboundSettings.from_env({"WEBHOOK_ALLOW_PRIVATE_URLS": "true"})
    assert legacy.policy == DEV_MODE
    assert legacy.policy.refusal("169.254.169.254") is not None
    assert legacy.policy.refusal("10.0.0.1") is not None
    assert len(legacy.notices) == 1 and "WEBHOOK_ALLOWED_PRIVATE_NETS" in legacy.notices[0]

    off = OutboundSettings.from_env({"WEBHOOK_ALLOW_PRIVATE_URLS": "false"})
    assert off.policy == PUBLIC_ONLY and len(off.notices) == 1

    both = OutboundSettings.from_env(
        {"WEBHOOK_ALLOW_PRIVATE_URLS": "true", "WEBHOOK_ALLOWED_PRIVATE_NETS": "10.0.0.0/8"}
    )
    assert [str(net) for net in both.policy.allowed_private_nets] == ["10.0.0.0/8"]
    assert "ignored" in both.notices[0]

    with pytest.raises(SettingsError, match="WEBHOOK_ALLOW_PRIVATE_URLS"):
        OutboundSettings.from_env({"WEBHOOK_ALLOW_PRIVATE_URLS": "maybe"})
