"""Functions zerotrust adds to CEL, on plain Python values so every backend shares them.

Each raises ``ValueError`` on bad input; backends turn that into a CEL error, so a
rule using it on garbage fails closed instead of silently not matching.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["EXTRA_FUNCTIONS", "ip_in_cidr", "ip_is_private"]


def _address(ip: Any) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if not isinstance(ip, str):
        raise ValueError(f"ip must be a string, not {type(ip).__name__}")
    return _parse_address(ip)


@functools.lru_cache(maxsize=4096)
def _parse_address(ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """Client addresses repeat from request to request: parse each once (pure, bounded)."""
    try:
        return ipaddress.ip_address(ip.strip())
    except ValueError as exc:
        raise ValueError(f"not an IP address: {ip!r}") from exc


def _network(cidr: Any) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    if not isinstance(cidr, str):
        raise ValueError(f"cidr must be a string, not {type(cidr).__name__}")
    return _parse_network(cidr)


@functools.lru_cache(maxsize=1024)
def _parse_network(cidr: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Ranges come from policies and data, so they repeat: parse each once (pure, bounded)."""
    try:
        return ipaddress.ip_network(cidr.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(f"not a CIDR range: {cidr!r}") from exc


def ip_in_cidr(ip: Any, cidr: Any) -> bool:
    """``ip_in_cidr(context.ip, "10.0.0.0/8")`` or with a list of ranges: in any of them.

    IPv4 and IPv6 both work; an address never matches a range of the other family.
    """
    address = _address(ip)
    ranges = cidr if isinstance(cidr, list | tuple) else [cidr]
    return any(address in _network(r) for r in ranges)


def ip_is_private(ip: Any) -> bool:
    """``ip_is_private(context.ip)``: RFC 1918 / RFC 4193 / loopback / link-local."""
    return _address(ip).is_private


#: name -> (implementation, number of arguments)
EXTRA_FUNCTIONS: Mapping[str, tuple[Callable[..., bool], int]] = MappingProxyType(
    {
        "ip_in_cidr": (ip_in_cidr, 2),
        "ip_is_private": (ip_is_private, 1),
    }
)
