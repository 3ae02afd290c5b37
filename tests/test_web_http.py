"""The shared HTTP mapping: route tables, client addresses behind proxies, configuration."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from zerotrust.web import HttpRequest, RouteTable, Target, WebConfig, client_ip
from zerotrust.web.addresses import (
    MAX_FORWARDED_HOPS,
    canonical_address,
    peer_is_trusted,
    trusted_networks,
)
from zerotrust.web.errors import WebConfigError

TRUSTED = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32"))
TABLE = {
    "GET /customers/{id}": ("customer_record", "read"),
    "GET /departments/{dept}/export": ("customer_record", "export", "dept"),
    "GET /files/{owner}/{rest:path}": ("file", "read"),
    "* /admin": ("admin", "any"),
}


def req(method: str, path: str, **kw: Any) -> HttpRequest:
    return HttpRequest(method=method, path=path, **kw)


def test_route_table_matches_templates() -> None:
    routes = RouteTable(TABLE)
    t = routes.match(req("GET", "/customers/c-1"))
    assert t == Target("customer_record", "read", "c-1", route="GET /customers/{id}")
    t = routes.match(req("GET", "/departments/support/export"))
    assert t is not None and t.resource_id == "support" and t.action == "export"
    t = routes.match(req("GET", "/files/ann/a/b.txt"))
    assert t is not None and t.resource_id is None
    assert t.context == {"path_params": {"owner": "ann", "rest": "a/b.txt"}}
    assert routes.match(req("HEAD", "/customers/c-1")) is not None
    assert routes.match(req("DELETE", "/admin")) is not None


@pytest.mark.parametrize(
    "path",
    ["/customers", "/customers/", "/customers/c-1/", "/customers/a/b", "/x/customers/c-1"],
)
def test_route_table_does_not_match_near_misses(path: str) -> None:
    assert RouteTable(TABLE).match(req("GET", path)) is None
    assert RouteTable(TABLE).match(req("POST", "/customers/c-1")) is None


def test_path_parameters_never_become_resource_properties() -> None:
    t = RouteTable({"GET /d/{owner_dept}/c/{id}": ("customer_record", "read")}).match(
        req("GET", "/d/billing/c/1")
    )
    assert t is not None and t.resource_properties == {}
    assert t.context["path_params"] == {"owner_dept": "billing"}


def test_properties_lookup_sync_and_async() -> None:
    sync = RouteTable(TABLE, properties=lambda kind, rid, http: {"owner": rid})
    t = sync(req("GET", "/customers/c-9"))
    assert isinstance(t, Target) and t.resource_properties == {"owner": "c-9"}

    async def lookup(kind: str, rid: str | None, http: HttpRequest) -> dict[str, Any] | None:
        return None

    pending = RouteTable(TABLE, properties=lookup)(req("GET", "/customers/c-9"))
    t = asyncio.run(pending)  # type: ignore[arg-type]
    assert t is not None and t.resource_properties == {}


@pytest.mark.parametrize(
    "bad",
    [{}, {"/customers": ("a", "b")}, {"GET customers": ("a", "b")}, {"GET /x": ("a",)}],
)
def test_bad_route_tables_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(WebConfigError):
        RouteTable(bad)


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    assert client_ip("203.0.113.9", "10.1.2.3", TRUSTED) == "203.0.113.9"
    assert client_ip("203.0.113.9", "10.1.2.3", ()) == "203.0.113.9"


def test_forwarded_for_is_read_right_to_left_through_trusted_proxies() -> None:
    assert client_ip("10.0.0.2", "198.51.100.7, 10.0.0.9", TRUSTED) == "198.51.100.7"
    # a client-forged entry to the left of the real client is not believed
    assert client_ip("10.0.0.2", "10.1.2.3, 198.51.100.7", TRUSTED) == "198.51.100.7"
    assert client_ip("10.0.0.2", "198.51.100.7, 10.0.0.9", TRUSTED) != "10.0.0.9"
    assert client_ip("10.0.0.2", "[2001:db8::1]:443, 198.51.100.7", TRUSTED) == "198.51.100.7"


def test_malformed_forwarded_for_gives_unknown_not_the_proxy() -> None:
    assert client_ip("10.0.0.2", "not-an-ip", TRUSTED) is None
    assert client_ip("testclient", "10.1.2.3", TRUSTED) is None


def test_config_needs_exactly_one_way_to_authenticate() -> None:
    with pytest.raises(WebConfigError):
        WebConfig()
    with pytest.raises(WebConfigError):
        WebConfig(identify=lambda http: {}, unmatched="allow")  # type: ignore[arg-type]
    with pytest.raises(WebConfigError):
        WebConfig(identify=lambda http: {}, trusted_proxies=["not a network"])
    cfg = WebConfig(
        identify=lambda http: {}, trusted_proxies="10.0.0.0/8", country_header="CF-IPCountry"
    )
    assert cfg.country_header == "cf-ipcountry"
    assert cfg.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"),)


# --- dual-stack proxies: one canonical form for every address ----------------------------

V4_PROXIES = (ipaddress.ip_network("10.0.0.0/8"),)


def test_dual_stack_peer_is_recognised_as_its_ipv4_proxy() -> None:
    # A dual-stack socket reports the IPv4 proxy 10.0.0.5 as ::ffff:10.0.0.5.
    assert client_ip("::ffff:10.0.0.5", "8.8.4.4", V4_PROXIES) == "8.8.4.4"
    assert client_ip("::ffff:a00:5", "8.8.4.4", V4_PROXIES) == "8.8.4.4"
    assert peer_is_trusted("::FFFF:10.0.0.5", V4_PROXIES)


def test_ipv4_mapped_trusted_range_is_the_ipv4_range() -> None:
    mapped = trusted_networks(["::ffff:10.0.0.0/104"])
    assert mapped == V4_PROXIES
    assert client_ip("10.0.0.5", "8.8.4.4", mapped) == "8.8.4.4"
    assert WebConfig(identify=dict, trusted_proxies="::ffff:10.0.0.0/104").trusted_proxies == (
        ipaddress.ip_network("10.0.0.0/8"),
    )
    # a range wider than the mapped block holds every mapped address, so all of IPv4
    assert client_ip("192.0.2.1", "8.8.4.4", trusted_networks("::/0")) is None


def test_mapped_forwarded_hop_is_its_ipv4_address() -> None:
    assert client_ip("10.0.0.2", "8.8.4.4, ::ffff:10.0.0.9", V4_PROXIES) == "8.8.4.4"
    # the client's own address in canonical form (the CEL network extension refuses mapped)
    assert client_ip("10.0.0.2", "::ffff:8.8.4.4", V4_PROXIES) == "8.8.4.4"
    assert client_ip("::ffff:203.0.113.9", None, V4_PROXIES) == "203.0.113.9"


def test_client_ip_never_returns_a_trusted_hop() -> None:
    assert client_ip("10.0.0.2", None, V4_PROXIES) is None
    assert client_ip("10.0.0.2", "", V4_PROXIES) is None
    assert client_ip("10.0.0.2", "10.0.0.3, ::ffff:10.0.0.4", V4_PROXIES) is None


@pytest.mark.parametrize(
    ("hop", "expected"),
    [
        ("8.8.4.4:5678", "8.8.4.4"),
        ("[2001:db9::1]:443", "2001:db9::1"),
        ("[2001:db9::1]", "2001:db9::1"),
        ("  8.8.4.4\t", "8.8.4.4"),
        ("fe80::1%eth0", "fe80::1"),
        ("2001:DB9:0::1", "2001:db9::1"),
        ("[::ffff:8.8.4.4]:80", "8.8.4.4"),
        ("[8.8.4.4]", None),
        ("\uff18.8.4.4", None),  # a fullwidth digit
        ("010.0.0.1", None),
        ("8.8.4.4:", None),
        ("8.8.4.4:123456", None),
        ("unknown", None),
        ("_hidden", None),
        ("[2001:db9::1", None),
    ],
)
def test_forwarded_hop_spellings(hop: str, expected: str | None) -> None:
    assert canonical_address(hop) == (None if expected is None else ipaddress.ip_address(expected))
    assert client_ip("10.0.0.2", f"1.1.1.1, {hop}", V4_PROXIES) == expected


def test_empty_forwarded_elements_are_skipped() -> None:
    # RFC 9110 section 5.6.1: a recipient accepts and ignores empty list elements.
    assert client_ip("10.0.0.2", "8.8.4.4, , ,10.0.0.3,", V4_PROXIES) == "8.8.4.4"


def test_forwarded_for_read_is_bounded() -> None:
    many = ", ".join(["10.0.0.1"] * 100_000)
    assert client_ip("10.0.0.2", f"8.8.4.4, {many}", V4_PROXIES) is None
    near = ", ".join(["10.0.0.1"] * (MAX_FORWARDED_HOPS - 1))
    assert client_ip("10.0.0.2", f"8.8.4.4, {near}", V4_PROXIES) == "8.8.4.4"
    assert client_ip("10.0.0.2", f"8.8.4.4, 10.0.0.1, {near}", V4_PROXIES) is None


def test_trusted_ranges_accept_network_objects() -> None:
    net = ipaddress.ip_network("::ffff:10.0.0.0/104")
    assert trusted_networks(net) == V4_PROXIES == trusted_networks([net])


@pytest.mark.parametrize("bad", ["fe80::%eth0/64", "10.0.0.0/33", 167772160, b"10.0.0.0/8"])
def test_trusted_ranges_must_be_ranges(bad: Any) -> None:
    with pytest.raises(WebConfigError, match="trusted_proxies"):
        WebConfig(identify=dict, trusted_proxies=[bad])
