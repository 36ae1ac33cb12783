"""One table of tricky webhook URLs, judged under the dev-mode policy (loopback only).

The API's configuration check, the dispatcher's delivery attempt and `paystream.netguard` itself are
each tested against this same table, so the two ends cannot drift apart: a URL the API accepts is
one the dispatcher sends to, and a URL the API refuses is one the dispatcher refuses as well.

`{port}` stands for the port of a receiver on 127.0.0.1. Every permitted case leads to that
receiver; a refused case must never reach anything.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class UrlCase:
    template: str
    # Under `WEBHOOK_ALLOWED_PRIVATE_NETS=127.0.0.0/8,::1/128`.
    permitted: bool
    # The host the URL leads to, as the HTTP client reads it; None when the URL is refused unparsed.
    host: str | None
    why: str

    def url(self, port: int) -> str:
        return self.template.replace("{port}", str(port))


DEV_MODE_URL_CASES: tuple[UrlCase, ...] = (
    UrlCase("http://127.0.0.1:{port}/hooks", True, "127.0.0.1", "loopback, as make run allows"),
    UrlCase("http://localhost:{port}/hooks", True, "localhost", "a name that resolves to loopback"),
    UrlCase("http://LocalHost:{port}/hooks", True, "localhost", "host names are case-insensitive"),
    UrlCase(
        "http://\u24db\u24de\u24d2\u24d0\u24db\u24d7\u24de\u24e2\u24e3:{port}/hooks",
        True,
        "localhost",
        "circled letters: IDNA maps them to localhost",
    ),
    UrlCase(
        "http://\uff11\uff12\uff17.\uff10.\uff10.\uff11:{port}/hooks",
        True,
        "127.0.0.1",
        "full-width digits: NFKC makes them ASCII",
    ),
    UrlCase("http://[::ffff:127.0.0.1]:{port}/hooks", True, "::ffff:7f00:1", "IPv4-mapped loopback"),
    UrlCase("http://1.1.1.1@127.0.0.1:{port}/hooks", True, "127.0.0.1", "userinfo is not the host"),
    UrlCase("http://127.0.0.1:{port}/hooks#@1.1.1.1/", True, "127.0.0.1", "a fragment is not the host"),
    UrlCase("http://127.0.0.1:{port}/hooks?@1.1.1.1/", True, "127.0.0.1", "a query is not the host"),
    # urlsplit reads a public host in these; yarl (which sends) refuses them: refused at both ends.
    UrlCase("http://127.0.0.1\\@1.1.1.1/", False, None, "a backslash in the authority"),
    UrlCase("http://127.0.0.1:{port}\\@1.1.1.1/", False, None, "a backslash after the port"),
    UrlCase("http://1.1.1.1\\@127.0.0.1:{port}/hooks", False, None, "a backslash in the userinfo"),
    UrlCase("http://127.0.0.1:{port}/ho\\oks", False, None, "a backslash in the path"),
    # Legacy numeric forms the system resolver maps onto 127.0.0.1.
    UrlCase("http://2130706433:{port}/hooks", False, None, "a decimal IPv4 number"),
    UrlCase("http://017700000001:{port}/hooks", False, None, "an octal IPv4 number"),
    UrlCase("http://0x7f000001:{port}/hooks", False, None, "a hex IPv4 number"),
    UrlCase("http://0177.0.0.1:{port}/hooks", False, None, "an octal octet"),
    UrlCase("http://127.1:{port}/hooks", False, None, "a short IPv4 form"),
    UrlCase("http://127.0.0.1.:{port}/hooks", False, None, "an IPv4 literal with a trailing dot"),
    UrlCase("http://%31%32%37.0.0.1:{port}/hooks", False, None, "a percent-encoded host"),
    UrlCase("http://[::1%25lo]:{port}/hooks", False, None, "an IPv6 zone id"),
    UrlCase("http://[fe80::1%25eth0]:{port}/hooks", False, None, "a link-local zone id"),
    UrlCase("http://127.0.0.1:{port}/ho\x00oks", False, None, "a NUL character"),
    UrlCase("http://127.0.0.1:0/hooks", False, None, "port zero"),
    UrlCase("ftp://127.0.0.1:{port}/hooks", False, None, "not http(s)"),
    # Parsed fine, but the address is outside the loopback list.
    UrlCase("http://169.254.169.254:{port}/latest/meta-data/", False, "169.254.169.254", "metadata"),
    UrlCase("http://1.1.1.1@169.254.169.254:{port}/", False, "169.254.169.254", "metadata, userinfo"),
    UrlCase(
        "http://169\u3002254\u3002169\u3002254:{port}/",
        False,
        "169.254.169.254",
        "metadata, ideographic dots",
    ),
    UrlCase("http://[::ffff:169.254.169.254]:{port}/", False, "::ffff:a9fe:a9fe", "mapped metadata"),
    UrlCase("http://[2002:a9fe:a9fe::1]:{port}/", False, "2002:a9fe:a9fe::1", "6to4 of metadata"),
    UrlCase("http://169.254.170.2:{port}/", False, "169.254.170.2", "ECS task metadata"),
    UrlCase("http://100.100.100.200:{port}/", False, "100.100.100.200", "Alibaba metadata"),
    UrlCase("http://[fd00:ec2::254]:{port}/", False, "fd00:ec2::254", "AWS IPv6 metadata"),
    UrlCase("http://169.254.1.1:{port}/", False, "169.254.1.1", "link-local"),
    UrlCase("http://[fe80::1]:{port}/", False, "fe80::1", "IPv6 link-local"),
    UrlCase("http://10.0.0.1:{port}/hooks", False, "10.0.0.1", "RFC 1918"),
    UrlCase("http://172.16.0.1:{port}/hooks", False, "172.16.0.1", "RFC 1918"),
    UrlCase("http://192.168.1.1:{port}/hooks", False, "192.168.1.1", "RFC 1918"),
    UrlCase("http://[::ffff:10.0.0.1]:{port}/hooks", False, "::ffff:a00:1", "mapped RFC 1918"),
    UrlCase("http://100.64.0.1:{port}/hooks", False, "100.64.0.1", "shared (CGNAT) space"),
    UrlCase("http://[fd12:3456::1]:{port}/hooks", False, "fd12:3456::1", "IPv6 unique-local"),
    UrlCase("http://0.0.0.0:{port}/hooks", False, "0.0.0.0", "unspecified (Linux connects it locally)"),
    UrlCase("http://[::]:{port}/hooks", False, "::", "IPv6 unspecified"),
)
