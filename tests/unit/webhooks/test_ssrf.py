from __future__ import annotations

import ipaddress
import socket

import aiohttp
import pytest
from aiohttp.abc import AbstractResolver, ResolveResult

from app.adapters.webhooks import ssrf
from app.adapters.webhooks.ssrf import (
    MAX_URL_LENGTH,
    PRODUCTION_POLICY,
    BlockedAddress,
    GuardedResolver,
    UnsafeUrl,
    UrlPolicy,
    blocked_reason,
    check_url_at_delivery,
    resolve_and_check,
    unsafe_url_cause,
    validate_endpoint_url,
)

pytestmark = pytest.mark.unit

PROD = PRODUCTION_POLICY
DEV = UrlPolicy(require_https=False, allow_loopback=True)
HTTP_NO_LOOPBACK = UrlPolicy(require_https=False, allow_loopback=False)


# --- addresses ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "2606:4700:4700::1111",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",  # IPv4-mapped public address
        "2002:808:808::1",  # 6to4 of 8.8.8.8
        "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    ],
)
def test_public_addresses_are_allowed_under_every_policy(address: str) -> None:
    ip = ipaddress.ip_address(address)

    assert blocked_reason(ip, PROD) is None
    assert blocked_reason(ip, DEV) is None


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("169.254.169.254", "cloud metadata"),
        ("169.254.170.2", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("192.0.0.192", "cloud metadata"),
        ("168.63.129.16", "cloud metadata"),
        ("10.0.0.5", "private"),
        ("172.16.0.1", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("fec0::1", "site-local"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, nothing binds it
        ("0.1.2.3", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("255.255.255.255", "broadcast"),
        ("240.0.0.1", "reserved"),
        ("::127.0.0.1", "reserved"),
        ("192.0.0.8", "IETF protocol"),
        ("64:ff9b:1::a00:1", "local-use NAT64"),
        ("100::1", "discard"),
        ("192.0.2.10", "not a public address"),  # documentation
        ("198.51.100.1", "not a public address"),
        ("203.0.113.1", "not a public address"),
        ("198.18.0.1", "not a public address"),  # benchmarking
        ("2001:db8::1", "not a public address"),
        ("2001::1", "not a public address"),  # Teredo
        ("::ffff:10.0.0.1", "private address (RFC 1918), embedded in ::ffff:a00:1"),
        ("::ffff:169.254.169.254", "cloud metadata"),
        ("2002:a9fe:a9fe::1", "cloud metadata service address, embedded in 2002:"),  # 6to4
        ("64:ff9b::a9fe:a9fe", "cloud metadata service address, embedded in 64:ff9b::"),
        ("64:ff9b::a00:1", "private"),
    ],
)
def test_internal_addresses_are_blocked_under_every_policy(address: str, reason: str) -> None:
    ip = ipaddress.ip_address(address)

    for policy in (PROD, DEV, HTTP_NO_LOOPBACK):
        blocked = blocked_reason(ip, policy)
        assert blocked is not None
        assert reason in blocked


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "127.8.9.10", "::1", "::ffff:127.0.0.1", "2002:7f00:1::", "64:ff9b::7f00:1"],
)
def test_loopback_is_blocked_unless_the_policy_allows_it(address: str) -> None:
    ip = ipaddress.ip_address(address)

    assert "loopback" in (blocked_reason(ip, PROD) or "")
    assert "loopback" in (blocked_reason(ip, HTTP_NO_LOOPBACK) or "")
    assert blocked_reason(ip, DEV) is None


# --- URLs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("https://example.com/hooks", "https://example.com/hooks"),
        ("https://example.com", "https://example.com/"),
        ("HTTPS://Example.COM:443/Hooks?a=1&b=2", "https://example.com/Hooks?a=1&b=2"),
        ("https://example.com:8443/h", "https://example.com:8443/h"),
        ("https://hooks.example.com./h", "https://hooks.example.com./h"),
        ("https://bücher.example/h", "https://xn--bcher-kva.example/h"),
        ("https://my_host.example.com/h", "https://my_host.example.com/h"),
        ("https://8.8.8.8/h", "https://8.8.8.8/h"),
        ("https://[2606:4700:4700:0::1111]:8443/h", "https://[2606:4700:4700::1111]:8443/h"),
        ("https://1password.com/h", "https://1password.com/h"),
    ],
)
def test_acceptable_urls_are_normalized(url: str, normalized: str) -> None:
    assert validate_endpoint_url(url, PROD) == normalized
    assert check_url_at_delivery(url, PROD) == normalized


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://example.com/h", "must use https"),
        ("ftp://example.com/h", "must be absolute"),
        ("example.com/h", "must be absolute"),
        ("//example.com/h", "must be absolute"),
        ("/relative", "must be absolute"),
        ("javascript:alert(1)", "must be absolute"),
        ("https:///path-only", "has no host"),
        ("https://user:pw@example.com/h", "credentials"),
        ("https://user@example.com/h", "credentials"),
        ("https://example.com/h#frag", "fragment"),
        ("https://example.com/h#", "fragment"),
        ("https://example.com:0/h", "between 1 and 65535"),
        ("https://example.com:99999/h", "cannot be parsed"),
        ("https://example.com:port/h", "cannot be parsed"),
        ("https://exa mple.com/h", "spaces"),
        ("https://example.com/h\n", "control characters"),
        ("https://evil.com\\@127.0.0.1/", "backslashes"),
        ("https://example..com/h", "not a valid host name"),
        ("https://-bad.example.com/h", "not a valid host name"),
        ("https://bad-.example.com/h", "not a valid host name"),
        ("https://exa$mple.com/h", "not a valid host name"),
        (f"https://{'a' * 64}.com/h", "not a valid host name"),
        ("https://" + "a." * 127 + "com/h", "not a valid host name"),
        ("https://\u2024.example/h", "not a valid host name"),
        ("https://localhost/h", "loopback name"),
        ("https://LOCALHOST./h", "loopback name"),
        ("https://api.localhost/h", "loopback name"),
        ("https://127.0.0.1/h", "loopback address"),
        ("https://127.1/h", "not a canonical IPv4"),
        ("https://2130706433/h", "not a canonical IPv4"),
        ("https://0x7f.0.0.1/h", "not a canonical IPv4"),
        ("https://0177.0.0.1/h", "not a canonical IPv4"),
        ("https://127.0.0.1./h", "not a canonical IPv4"),
        ("https://1.2.3.4.5/h", "not a canonical IPv4"),
        ("https://example.123/h", "not a canonical IPv4"),
        ("https://[::1]/h", "loopback address"),
        ("https://[::ffff:127.0.0.1]/h", "loopback address, embedded in"),
        ("https://[fe80::1%25eth0]/h", "zone identifier"),
        ("https://[::g]/h", "cannot be parsed"),
        ("https://10.1.2.3/h", "private"),
        ("https://169.254.169.254/latest/meta-data/", "cloud metadata"),
        ("https://[fd00:ec2::254]/h", "cloud metadata"),
        ("https://100.64.0.1/h", "carrier-grade NAT"),
        ("https://0.0.0.0/h", "unspecified"),
        ("https://example.com/" + "a" * MAX_URL_LENGTH, "longer than 2048"),
    ],
)
def test_unsafe_urls_are_refused_saying_why(url: str, reason: str) -> None:
    with pytest.raises(UnsafeUrl, match=reason):
        validate_endpoint_url(url, PROD)
    with pytest.raises(UnsafeUrl, match=reason):
        check_url_at_delivery(url, PROD)


def test_a_url_of_exactly_the_maximum_length_is_accepted() -> None:
    prefix = "https://example.com/"
    url = prefix + "a" * (MAX_URL_LENGTH - len(prefix))

    assert validate_endpoint_url(url, PROD) == url


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("http://127.0.0.1:8080/hooks", "http://127.0.0.1:8080/hooks"),
        ("http://localhost:8080/hooks", "http://localhost:8080/hooks"),
        ("http://[::1]:8080", "http://[::1]:8080/"),
        ("http://example.com:80/h", "http://example.com/h"),
    ],
)
def test_development_allows_http_and_loopback(url: str, normalized: str) -> None:
    assert validate_endpoint_url(url, DEV) == normalized


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/h", "http://169.254.169.254/", "http://[fe80::1]/", "http://192.168.0.1"],
)
def test_development_still_refuses_internal_addresses(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        validate_endpoint_url(url, DEV)


def test_http_without_loopback_refuses_loopback_but_allows_http() -> None:
    assert validate_endpoint_url("http://example.com/h", HTTP_NO_LOOPBACK) == "http://example.com/h"
    with pytest.raises(UnsafeUrl, match="loopback"):
        validate_endpoint_url("http://127.0.0.1:8080/h", HTTP_NO_LOOPBACK)


def test_a_url_registered_under_a_looser_policy_is_refused_at_delivery_under_a_stricter_one() -> (
    None
):
    url = validate_endpoint_url("http://127.0.0.1:8080/h", DEV)

    with pytest.raises(UnsafeUrl, match="https"):
        check_url_at_delivery(url, PROD)
    with pytest.raises(UnsafeUrl, match="loopback"):
        check_url_at_delivery(url, HTTP_NO_LOOPBACK)


def test_a_host_that_aiohttp_would_read_differently_is_refused_at_delivery(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class OtherParser:
        def __init__(self, url: str) -> None:
            self.raw_host = "internal.example"

    monkeypatch.setattr(ssrf.yarl, "URL", OtherParser)

    with pytest.raises(UnsafeUrl, match="ambiguous"):
        check_url_at_delivery("https://example.com/h", PROD)


def test_an_unsafe_url_is_a_value_error_and_a_blocked_address_also_an_os_error() -> None:
    blocked = BlockedAddress("webhook host x is a loopback address")

    assert issubclass(UnsafeUrl, ValueError)
    assert isinstance(blocked, UnsafeUrl)
    assert isinstance(blocked, OSError)
    assert blocked.strerror == "webhook host x is a loopback address"


# --- resolution ---------------------------------------------------------------------------------


class FakeResolver(AbstractResolver):
    """Answers from a fixed table, like a DNS server an attacker controls."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.closed = False

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if host not in self.answers:
            raise OSError(f"no such host {host}")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=0,
            )
            for address in self.answers[host]
        ]

    async def close(self) -> None:
        self.closed = True


async def test_localhost_resolves_to_loopback_and_is_refused_in_production() -> None:
    with pytest.raises(UnsafeUrl, match=r"webhook host localhost \(.+\) is a loopback address"):
        await resolve_and_check("localhost", 443, PROD)


async def test_localhost_is_accepted_when_loopback_is_allowed() -> None:
    addresses = await resolve_and_check("localhost", 8080, DEV)

    assert addresses
    assert all(ipaddress.ip_address(address).is_loopback for address in addresses)


async def test_a_name_that_does_not_resolve_is_refused() -> None:
    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await resolve_and_check("no-such-host.invalid", 443, PROD)


@pytest.mark.parametrize(
    ("host", "address"), [("8.8.8.8", "8.8.8.8"), ("[2606:4700::1111]", "2606:4700::1111")]
)
async def test_an_ip_literal_is_checked_without_resolving(host: str, address: str) -> None:
    assert await resolve_and_check(host, 443, PROD, FakeResolver({})) == [address]


async def test_an_ip_literal_that_is_blocked_is_refused() -> None:
    with pytest.raises(UnsafeUrl, match="private"):
        await resolve_and_check("10.0.0.1", 443, PROD)


async def test_one_blocked_address_among_public_ones_refuses_the_host() -> None:
    resolver = FakeResolver({"mixed.example": ["8.8.8.8", "10.0.0.7", "8.8.8.8"]})

    with pytest.raises(UnsafeUrl, match=r"mixed\.example \(10\.0\.0\.7\) is a private address"):
        await resolve_and_check("mixed.example", 443, PROD, resolver)


async def test_a_host_with_only_public_addresses_is_accepted_once_each() -> None:
    resolver = FakeResolver({"ok.example": ["8.8.8.8", "2606:4700::1111", "8.8.8.8"]})

    assert await resolve_and_check("ok.example", 443, PROD, resolver) == [
        "8.8.8.8",
        "2606:4700::1111",
    ]


async def test_a_resolver_failure_or_no_answer_is_refused() -> None:
    resolver = FakeResolver({"empty.example": []})

    with pytest.raises(UnsafeUrl, match="does not resolve"):
        await resolve_and_check("missing.example", 443, PROD, resolver)
    with pytest.raises(UnsafeUrl, match="resolves to no address"):
        await resolve_and_check("empty.example", 443, PROD, resolver)


async def test_the_guarded_resolver_returns_only_checked_answers() -> None:
    inner = FakeResolver({"ok.example": ["8.8.8.8"], "rebound.example": ["169.254.169.254"]})
    guarded = GuardedResolver(PROD, inner)

    answers = await guarded.resolve("ok.example", 443, socket.AF_UNSPEC)
    assert [answer["host"] for answer in answers] == ["8.8.8.8"]
    with pytest.raises(BlockedAddress, match="cloud metadata") as caught:
        await guarded.resolve("rebound.example", 443)
    assert isinstance(caught.value, OSError)
    with pytest.raises(OSError, match="no such host"):
        await guarded.resolve("missing.example", 443)

    await guarded.close()
    assert inner.closed


async def test_the_guarded_resolver_refuses_an_empty_answer() -> None:
    guarded = GuardedResolver(PROD, FakeResolver({"empty.example": []}))

    with pytest.raises(BlockedAddress, match="resolves to no address"):
        await guarded.resolve("empty.example", 443)


async def test_the_guarded_resolver_makes_aiohttps_default_resolver_on_first_use() -> None:
    guarded = GuardedResolver(DEV)
    await guarded.close()  # nothing made yet, nothing to close

    answers = await guarded.resolve("localhost", 80, socket.AF_INET)

    assert [answer["host"] for answer in answers] == ["127.0.0.1"]
    await guarded.close()


def test_the_unsafe_cause_is_found_behind_aiohttps_connector_error() -> None:
    blocked = BlockedAddress("webhook host x is a loopback address")
    key = aiohttp.client_reqrep.ConnectionKey("x", 443, True, True, None, None, None)
    wrapped = aiohttp.ClientConnectorDNSError(key, blocked)
    try:
        raise RuntimeError("outer") from wrapped
    except RuntimeError as outer:
        chained = outer

    assert unsafe_url_cause(wrapped) is blocked
    assert unsafe_url_cause(chained) is blocked
    assert unsafe_url_cause(blocked) is blocked
    assert unsafe_url_cause(aiohttp.ClientConnectorDNSError(key, OSError("nope"))) is None
    assert unsafe_url_cause(ValueError("unrelated")) is None
    assert "loopback address" in str(wrapped)
