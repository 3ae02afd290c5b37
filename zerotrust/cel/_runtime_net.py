"""The CEL network extension (cel-go ``ext/network.go``): ``ip()``, ``cidr()`` and their methods.

Values are Python's own: ``IPv4Address``/``IPv6Address`` are CEL ``net.IP``, and
``IPv4Interface``/``IPv6Interface`` (an address with a prefix length, host bits kept as
written) are ``net.CIDR``. Strings are read by the parsers every IP function shares
(:mod:`.functions`), so ``ip('::ffff:10.0.0.1')`` is refused exactly as
``ip_in_cidr('::ffff:10.0.0.1', ...)`` is. The address predicates are Go's
``net/netip`` ones, which the extension specifies (``isGlobalUnicast`` is true for
private addresses, as in Go), from fixed tables rather than Python's changing ones.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

from zerotrust.cel._runtime_values import CIDR, IP, STRING, CelError, kind_of, no_overload
from zerotrust.cel.functions import parse_address, parse_interface

__all__ = [
    "NETWORK_FUNCTIONS",
    "NETWORK_METHODS",
    "QUALIFIED_FUNCTIONS",
    "to_cidr",
    "to_ip",
]


def _bits(*ranges: str) -> tuple[tuple[int, int, int], ...]:
    """(IP version, network, mask) of each range, so a test is two int operations."""
    out = []
    for text in ranges:
        network = ipaddress.ip_network(text)
        out.append((network.version, int(network.network_address), int(network.netmask)))
    return tuple(out)


# The address classes of Go's ``net/netip`` (which the extension specifies), as fixed
# tables: ``ipaddress``'s ``is_*`` properties follow registries that change between
# Python releases.
_UNSPECIFIED = _bits("0.0.0.0/32", "::/128")
_LOOPBACK = _bits("127.0.0.0/8", "::1/128")
_MULTICAST = _bits("224.0.0.0/4", "ff00::/8")
_LINK_LOCAL_UNICAST = _bits("169.254.0.0/16", "fe80::/10")
# netip: IPv4 224.0.0.0/24; IPv6 ``ffX2::/16`` whatever the flags nibble X (mask 0xff0f).
_LINK_LOCAL_MULTICAST = (*_bits("224.0.0.0/24"), (6, 0xFF02 << 112, 0xFF0F << 112))
_V4_BROADCAST = _bits("255.255.255.255/32")


def _within(address: Any, table: tuple[tuple[int, int, int], ...]) -> bool:
    version, value = address.version, int(address)
    return any(v == version and value & mask == net for v, net, mask in table)


def _string(name: str, value: Any) -> str:
    if kind_of(value) is not STRING:
        no_overload(name, value)
    return str(value)


def _parsed(parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        raise CelError(str(exc)) from None


def to_ip(value: Any) -> Any:
    """``ip(string)``; on a ``net.CIDR`` receiver, ``cidr.ip()``: its address as written."""
    kind = kind_of(value)
    if kind is CIDR:
        return value.ip
    if kind is IP:
        return value
    return _parsed(parse_address, _string("ip", value))


def to_cidr(value: Any) -> Any:
    """``cidr(string)``."""
    if kind_of(value) is CIDR:
        return value
    return _parsed(parse_interface, _string("cidr", value))


def is_ip(value: Any) -> bool:
    try:
        parse_address(_string("isIP", value))
    except ValueError:
        return False
    return True


def is_cidr(value: Any) -> bool:
    try:
        parse_interface(_string("isCIDR", value))
    except ValueError:
        return False
    return True


def is_canonical(value: Any) -> bool:
    """``ip.isCanonical(string)``: whether it is the RFC 5952 spelling of its address."""
    text = _string("ip.isCanonical", value)
    return str(_parsed(parse_address, text)) == text


def _ip(name: str, value: Any) -> Any:
    if kind_of(value) is not IP:
        no_overload(name, value)
    return value


def _cidr(name: str, value: Any) -> Any:
    if kind_of(value) is not CIDR:
        no_overload(name, value)
    return value


def family(ip: Any) -> int:
    return int(_ip("family", ip).version)


def is_unspecified(ip: Any) -> bool:
    return _within(_ip("isUnspecified", ip), _UNSPECIFIED)


def is_loopback(ip: Any) -> bool:
    return _within(_ip("isLoopback", ip), _LOOPBACK)


def is_link_local_unicast(ip: Any) -> bool:
    return _within(_ip("isLinkLocalUnicast", ip), _LINK_LOCAL_UNICAST)


def is_link_local_multicast(ip: Any) -> bool:
    return _within(_ip("isLinkLocalMulticast", ip), _LINK_LOCAL_MULTICAST)


def is_global_unicast(ip: Any) -> bool:
    """Go's ``netip.Addr.IsGlobalUnicast``: not unspecified, loopback, multicast,
    link-local unicast or the IPv4 broadcast address (private addresses are global)."""
    address = _ip("isGlobalUnicast", ip)
    return not any(
        _within(address, table)
        for table in (_UNSPECIFIED, _LOOPBACK, _MULTICAST, _LINK_LOCAL_UNICAST, _V4_BROADCAST)
    )


def contains_ip(cidr: Any, ip: Any) -> bool:
    network = _cidr("containsIP", cidr).network
    address = to_ip(ip) if kind_of(ip) is STRING else _ip("containsIP", ip)
    return address in network


def contains_cidr(cidr: Any, other: Any) -> bool:
    parent = _cidr("containsCIDR", cidr).network
    child = (to_cidr(other) if kind_of(other) is STRING else _cidr("containsCIDR", other)).network
    return bool(parent.version == child.version and child.subnet_of(parent))


def masked(cidr: Any) -> Any:
    network = _cidr("masked", cidr).network
    return ipaddress.ip_interface((network.network_address, network.prefixlen))


def prefix_length(cidr: Any) -> int:
    return int(_cidr("prefixLength", cidr).network.prefixlen)


def cidr_ip(cidr: Any) -> Any:
    return _cidr("ip", cidr).ip


#: Global functions: CEL name -> (implementation, number of arguments).
NETWORK_FUNCTIONS: Mapping[str, tuple[Callable[..., Any], int]] = MappingProxyType(
    {
        "ip": (to_ip, 1),
        "cidr": (to_cidr, 1),
        "isIP": (is_ip, 1),
        "isCIDR": (is_cidr, 1),
    }
)

#: Functions with a qualified name, called as ``ip.isCanonical(x)``.
QUALIFIED_FUNCTIONS: Mapping[str, tuple[Callable[..., Any], int]] = MappingProxyType(
    {"ip.isCanonical": (is_canonical, 1)}
)

#: Methods: CEL name -> (implementation, number of arguments with the receiver).
NETWORK_METHODS: Mapping[str, tuple[Callable[..., Any], int]] = MappingProxyType(
    {
        "family": (family, 1),
        "isUnspecified": (is_unspecified, 1),
        "isLoopback": (is_loopback, 1),
        "isGlobalUnicast": (is_global_unicast, 1),
        "isLinkLocalMulticast": (is_link_local_multicast, 1),
        "isLinkLocalUnicast": (is_link_local_unicast, 1),
        "containsIP": (contains_ip, 2),
        "containsCIDR": (contains_cidr, 2),
        "masked": (masked, 1),
        "prefixLength": (prefix_length, 1),
        "ip": (cidr_ip, 1),
    }
)
