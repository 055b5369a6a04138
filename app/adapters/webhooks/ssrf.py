"""SSRF protection: a merchant's webhook URL must never make us call into our own network.

A webhook URL is chosen by whoever holds a merchant API key, and our workers POST to it from
inside the platform's network. Unchecked, ``http://169.254.169.254/…`` would read the cloud
metadata service (and its credentials), ``http://10.0.0.5:5432`` would probe our database, and a
hostname that resolves to ``127.0.0.1`` would reach the worker's own admin ports. So:

1. **When the URL is registered** (``validate_endpoint_url``, then ``resolve_and_check``): an
   absolute http(s) URL, https only unless the policy allows http, no credentials, no fragment,
   at most 2,048 characters; an IP-literal host is checked at once, a name is resolved and every
   address it resolves to must be public. The merchant learns at once why a URL is refused.
2. **At every delivery** (``GuardedResolver``): DNS can change after registration (rebinding), so
   the delivery session's connector resolves through ``GuardedResolver``, which checks every
   address *it hands to aiohttp*: the addresses checked are the addresses connected to, with no
   window between check and use. aiohttp does not call the resolver for an IP-literal host, so
   ``check_url_at_delivery`` covers those (and re-checks the URL against today's policy).

What the delivery session must also do, or the guard is bypassed: no proxy (``trust_env=False``:
through a proxy we would only resolve the proxy's name), no redirects (``allow_redirects=False``:
a redirect target is another URL we never checked). A refused delivery surfaces from
``session.post`` as ``aiohttp.ClientConnectorDNSError`` whose ``os_error`` is a
``BlockedAddress``; ``unsafe_url_cause`` finds it.

Blocked: loopback (unless ``allow_loopback``, for development and tests only), private (RFC 1918,
fc00::/7), link-local (169.254/16, fe80::/10), cloud metadata endpoints, shared/CGNAT space
(100.64/10), unspecified, multicast, reserved, documentation and benchmarking ranges, anything
else Python does not consider globally routable, and IPv6 addresses that embed an IPv4 address
(IPv4-mapped, 6to4, NAT64) when the embedded address is blocked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import SplitResult, urlsplit

import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_URL_LENGTH: Final = 2048
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


@dataclass(frozen=True)
class UrlPolicy:
    """Which webhook URLs are acceptable in this deployment.

    Production: ``require_https=True, allow_loopback=False``. Development and tests may allow
    plain http and loopback (``WEBHOOK_ALLOW_LOOPBACK=true``) to reach a receiver on 127.0.0.1;
    settings refuse loopback in production.
    """

    require_https: bool
    allow_loopback: bool
    # Resolve a host name when the URL is registered, and refuse it if any address is not
    # public (production); delivery checks every address it connects to either way.
    resolve_at_registration: bool = False


PRODUCTION_POLICY: Final = UrlPolicy(
    require_https=True, allow_loopback=False, resolve_at_registration=True
)
REGISTRATION_RESOLVE_SECONDS: Final = 5.0
# What a merchant is told about a blocked address: never the address, which for a name that
# resolves inside our network (``postgres``, ``redis``) would map that network for them.
BLOCKED_FOR_MERCHANTS: Final = "the address resolves to a private or reserved network"


class UnsafeUrl(ValueError):
    """A webhook URL we refuse to call; the message names the reason."""


class BlockedAddress(UnsafeUrl, OSError):
    """A webhook host resolved to an address we refuse to connect to.

    Also an ``OSError`` because that is what aiohttp's connector expects from a resolver: it wraps
    it in ``ClientConnectorDNSError`` (with this as ``os_error``) and ``session.post`` raises that,
    like any other failure to reach the host.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        # aiohttp's ClientConnectorError shows ``strerror`` in its message.
        self.strerror = message

    @property
    def for_merchant(self) -> str:
        """What the merchant may see: the operator's log has ``str(self)``, with the address."""
        return BLOCKED_FOR_MERCHANTS


def unsafe_url_cause(exc: BaseException) -> UnsafeUrl | None:
    """The ``UnsafeUrl`` behind an exception from ``session.post``, if that is why it failed."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, UnsafeUrl):
            return current
        seen.add(id(current))
        os_error = getattr(current, "os_error", None)
        current = os_error if isinstance(os_error, BaseException) else current.__cause__
    return None


# --- addresses ----------------------------------------------------------------------------------

_METADATA_ADDRESSES: Final[frozenset[IPAddress]] = frozenset(
    ipaddress.ip_address(address)
    for address in (
        "169.254.169.254",  # AWS, GCP, Azure, DigitalOcean, OpenStack, …
        "169.254.170.2",  # AWS ECS task metadata
        "fd00:ec2::254",  # AWS over IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure wire server: a public-looking address only VMs can reach
    )
)

_BLOCKED_NETWORKS: Final[tuple[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str], ...]] = (
    tuple(
        (ipaddress.ip_network(network), reason)
        for network, reason in (
            ("0.0.0.0/8", "an unspecified ('this network') address"),
            ("::/128", "an unspecified address"),
            ("10.0.0.0/8", "a private address (RFC 1918)"),
            ("172.16.0.0/12", "a private address (RFC 1918)"),
            ("192.168.0.0/16", "a private address (RFC 1918)"),
            ("fc00::/7", "a private address (unique local, fc00::/7)"),
            ("169.254.0.0/16", "a link-local address"),
            ("fe80::/10", "a link-local address"),
            ("fec0::/10", "a site-local address"),
            ("100.64.0.0/10", "a shared address (carrier-grade NAT, 100.64.0.0/10)"),
            ("224.0.0.0/4", "a multicast address"),
            ("ff00::/8", "a multicast address"),
            ("255.255.255.255/32", "the broadcast address"),
            ("240.0.0.0/4", "a reserved address"),
            ("192.0.0.0/24", "an IETF protocol assignment address"),
            ("64:ff9b:1::/48", "a local-use NAT64 address"),
            ("100::/64", "a discard-only address"),
            ("::/8", "a reserved address"),
        )
    )
)

_NAT64: Final = ipaddress.IPv6Network("64:ff9b::/96")


def blocked_reason(ip: IPAddress, policy: UrlPolicy) -> str | None:
    """Why we refuse to connect to ``ip`` under ``policy``, or None when it is allowed."""
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        reason = blocked_reason(embedded, policy)
        return None if reason is None else f"{reason}, embedded in {ip}"
    if ip in _METADATA_ADDRESSES:
        return "a cloud metadata service address"
    if ip.is_loopback:
        return None if policy.allow_loopback else "a loopback address"
    for network, reason in _BLOCKED_NETWORKS:
        if ip in network:
            return reason
    if ip.is_multicast or ip.is_reserved or not ip.is_global:
        # Documentation, benchmarking and whatever IANA reserves next: Python keeps the list.
        return "not a public address"
    return None


def _embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, 6to4, NAT64 /96), if any."""
    if isinstance(ip, ipaddress.IPv4Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFF_FFFF)
    return None


def _check_address(ip: IPAddress, host: str, policy: UrlPolicy) -> None:
    reason = blocked_reason(ip, policy)
    if reason is not None:
        shown = host if host == str(ip) else f"{host} ({ip})"
        raise BlockedAddress(f"webhook host {shown} is {reason}")


# --- URLs ---------------------------------------------------------------------------------------

_LABEL: Final = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)")
_NUMERIC_LABEL: Final = re.compile(r"(0x[0-9a-f]*|[0-9]+)")
_LOCALHOST_NAMES: Final = re.compile(r"(.+\.)?localhost\.?")


def validate_endpoint_url(url: str, policy: UrlPolicy) -> str:
    """The normalized URL if it is one we may register, else ``UnsafeUrl`` naming why.

    Syntax only, plus an immediate check of an IP-literal host; call ``resolve_and_check`` for a
    host name. Normalized: scheme and host lowercased, host IDNA-encoded, IPv6 compressed, default
    port dropped, empty path made ``/``.
    """
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeUrl(f"the URL is longer than {MAX_URL_LENGTH} characters")
    if any(char <= " " or char in "\x7f\\" for char in url):
        raise UnsafeUrl("the URL contains spaces, control characters or backslashes")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeUrl(f"the URL cannot be parsed: {exc}") from None
    scheme = _check_scheme(parts.scheme.lower(), policy)
    if "@" in parts.netloc:
        raise UnsafeUrl("the URL must not contain credentials (user:password@)")
    if "#" in url:
        raise UnsafeUrl("the URL must not contain a fragment (#…)")
    if port == 0:
        raise UnsafeUrl("the URL's port must be between 1 and 65535")
    host = _normalized_host(parts, policy)
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    query = f"?{parts.query}" if parts.query else ""
    return f"{scheme}://{netloc}{parts.path or '/'}{query}"


def check_url_at_delivery(url: str, policy: UrlPolicy) -> str:
    """Re-check a stored URL right before a delivery; returns the URL to POST to.

    The policy may have tightened since the endpoint was registered, and aiohttp connects to an
    IP-literal host without asking the resolver, so this is the delivery-time check for those.
    It also makes sure aiohttp's URL parser sees the same host we checked.
    """
    normalized = validate_endpoint_url(url, policy)
    ours = urlsplit(normalized).hostname
    theirs = yarl.URL(normalized).raw_host
    if theirs is None or ours != theirs.lower():
        raise UnsafeUrl(f"the URL's host is ambiguous ({ours!r} vs {theirs!r})")
    return normalized


def _check_scheme(scheme: str, policy: UrlPolicy) -> str:
    if scheme not in _DEFAULT_PORTS:
        raise UnsafeUrl("the URL must be absolute and start with https://")
    if scheme == "http" and policy.require_https:
        raise UnsafeUrl("the URL must use https")
    return scheme


def _normalized_host(parts: SplitResult, policy: UrlPolicy) -> str:
    """The host as it goes into the normalized URL, checked when it is an IP literal."""
    host = parts.hostname
    if not host:
        raise UnsafeUrl("the URL has no host")
    if ":" in host:  # only a bracketed IPv6 literal has a colon once the port is split off
        return _checked_ipv6(host, policy)
    try:
        ascii_host = host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeUrl(f"the URL's host {host!r} is not a valid host name") from None
    labels = ascii_host.removesuffix(".").split(".")
    if _NUMERIC_LABEL.fullmatch(labels[-1]):
        ipv4 = _canonical_ipv4(ascii_host)
        _check_address(ipv4, ascii_host, policy)
        return str(ipv4)
    if len(ascii_host) > 253 or not all(_LABEL.fullmatch(label) for label in labels):
        raise UnsafeUrl(f"the URL's host {host!r} is not a valid host name")
    if not policy.allow_loopback and _LOCALHOST_NAMES.fullmatch(ascii_host):
        raise UnsafeUrl(f"webhook host {ascii_host} is a loopback name")
    return ascii_host


def _checked_ipv6(host: str, policy: UrlPolicy) -> str:
    if "%" in host:
        raise UnsafeUrl("the URL must not contain an IPv6 zone identifier")
    try:
        ipv6 = ipaddress.IPv6Address(host)
    except ValueError:  # pragma: no cover - urlsplit refuses these first since Python 3.11.4
        raise UnsafeUrl(f"the URL's host [{host}] is not an IPv6 address") from None
    _check_address(ipv6, f"[{host}]", policy)
    return f"[{ipv6.compressed}]"


def _canonical_ipv4(host: str) -> ipaddress.IPv4Address:
    # 127.1, 0x7f.0.0.1, 2130706433 and 0177.0.0.1 all reach 127.0.0.1 through socket; they are
    # refused rather than decoded, so no two parsers can disagree about where they point.
    try:
        return ipaddress.IPv4Address(host)
    except ValueError:
        raise UnsafeUrl(
            f"the URL's host {host!r} is not a canonical IPv4 address (a.b.c.d)"
        ) from None


# --- resolution ---------------------------------------------------------------------------------


async def resolve_and_check(
    host: str, port: int, policy: UrlPolicy, resolver: AbstractResolver | None = None
) -> list[str]:
    """Every address ``host`` resolves to, if all are allowed; else ``UnsafeUrl`` naming one.

    For registration: ``getaddrinfo`` through the event loop unless a ``resolver`` is given. A name
    that does not resolve is refused too (``UnsafeUrl``): the merchant has a typo, or DNS is not
    set up yet.
    """
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        pass
    else:
        _check_address(literal, host, policy)
        return [str(literal)]
    try:
        async with asyncio.timeout(REGISTRATION_RESOLVE_SECONDS):
            if resolver is None:
                addresses = await _getaddrinfo(host, port)
            else:
                addresses = await _resolve_with(resolver, host, port)
    except TimeoutError:
        raise UnsafeUrl(
            f"webhook host {host} did not resolve within {REGISTRATION_RESOLVE_SECONDS:g} s"
        ) from None
    if not addresses:
        raise UnsafeUrl(f"webhook host {host} resolves to no address")
    for address in addresses:
        _check_address(ipaddress.ip_address(address), host, policy)
    return addresses


async def _getaddrinfo(host: str, port: int) -> list[str]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise UnsafeUrl(f"webhook host {host} does not resolve: {exc}") from None
    return _unique(str(info[4][0]) for info in infos)


async def _resolve_with(resolver: AbstractResolver, host: str, port: int) -> list[str]:
    try:
        results = await resolver.resolve(host, port, family=socket.AF_UNSPEC)
    except OSError as exc:
        raise UnsafeUrl(f"webhook host {host} does not resolve: {exc}") from None
    return _unique(result["host"] for result in results)


def _unique(addresses: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(addresses))


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver with every answer checked before aiohttp may connect to it.

    Use one per delivery session: ``TCPConnector(resolver=GuardedResolver(policy))``. A host
    with any blocked address is refused as a whole (``BlockedAddress``): connecting to only the
    allowed ones would still let a rebinding attacker choose when we hit the blocked one.
    """

    def __init__(self, policy: UrlPolicy, resolver: AbstractResolver | None = None) -> None:
        self._policy = policy
        # The default resolver binds the running loop, so it is made on first use.
        self._resolver = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._resolver is None:
            self._resolver = DefaultResolver()
        results = await self._resolver.resolve(host, port, family=family)
        if not results:
            raise BlockedAddress(f"webhook host {host} resolves to no address")
        for result in results:
            _check_address(ipaddress.ip_address(result["host"]), host, self._policy)
        return results

    async def close(self) -> None:
        if self._resolver is not None:
            await self._resolver.close()
