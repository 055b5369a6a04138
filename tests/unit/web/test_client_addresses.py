"""The client's address: the peer's, unless a trusted proxy says who it forwarded for."""

from __future__ import annotations

from ipaddress import ip_network

import pytest

from web.edge import ClientAddresses

pytestmark = pytest.mark.unit

PROXIES = ClientAddresses([ip_network("10.0.0.0/8"), ip_network("192.168.1.10/32")])


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert ClientAddresses().of("203.0.113.9", "1.2.3.4") == "203.0.113.9"


def test_a_request_from_an_untrusted_peer_keeps_the_peers_address() -> None:
    # Anyone can write X-Forwarded-For; only a trusted proxy is believed.
    assert PROXIES.of("203.0.113.9", "1.2.3.4") == "203.0.113.9"


def test_a_trusted_proxy_is_believed_for_the_hop_it_added() -> None:
    assert PROXIES.of("10.1.2.3", "198.51.100.7") == "198.51.100.7"


def test_the_left_part_a_client_wrote_is_never_believed() -> None:
    # The client sent "X-Forwarded-For: 1.2.3.4"; the proxy appended the address it saw.
    assert PROXIES.of("10.1.2.3", "1.2.3.4, 198.51.100.7") == "198.51.100.7"


def test_a_chain_of_trusted_proxies_is_walked_to_the_client() -> None:
    assert PROXIES.of("10.1.2.3", "1.2.3.4, 198.51.100.7, 192.168.1.10") == "198.51.100.7"


def test_garbage_from_a_trusted_proxy_leaves_the_proxys_address() -> None:
    assert PROXIES.of("10.1.2.3", "not-an-address") == "10.1.2.3"
    assert PROXIES.of("10.1.2.3", "") == "10.1.2.3"


def test_ipv6_and_unix_sockets() -> None:
    assert ClientAddresses([ip_network("::1/128")]).of("::1", "2001:db8::5") == "2001:db8::5"
    assert PROXIES.of(None, "1.2.3.4") == "unknown"
