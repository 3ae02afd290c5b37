"""Client addresses behind proxies, in one canonical form for every comparison.

A dual-stack socket reports an IPv4 peer as the IPv4-mapped IPv6 address
``::ffff:10.0.0.5`` (RFC 4291 section 2.5.5.2). If that were compared as IPv6, an
IPv4 proxy range would not recognise the proxy, and the proxy's own private address
would become the client's. So every address (the peer, each forwarded hop) and every
trusted range is put in canonical form once, where it enters:

* an IPv4-mapped address is the IPv4 address (``::ffff:a00:5`` is ``10.0.0.5``);
* a zone id is dropped (``fe80::1%eth0`` is ``fe80::1``): it names an interface of
  the proxy, not a client;
* a port and IPv6 brackets are dropped (``1.2.3.4:5678``, ``[2001:db8::1]:443``);
* digits are ASCII only, IPv4 octets without leading zeros; anything else is not an
  address (``None``: unknown).

The canonical text is what the CEL network extension accepts (it refuses mapped
addresses and zones), so ``context.ip`` always works with ``ip_in_cidr``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

__all__ = [
    "MAX_FORWARDED_HOPS",
    "Address",
    "IPNetwork",
    "canonical_address",
    "client_ip",
    "is_trusted",
    "peer_is_trusted",
    "trusted_networks",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_FORWARDED_HOPS = 64
"""``X-Forwarded-For`` is read from the right for at most this many hops."""

_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_ALL_IPV4 = ipaddress.IPv4Network("0.0.0.0/0")
_V4_WITH_PORT = re.compile(r"([0-9.]+):[0-9]{1,5}", re.ASCII)
_BRACKETED = re.compile(r"\[([^\]]*)\](?::[0-9]{1,5})?", re.ASCII)


def canonical_address(text: str) -> Address | None:
    """The one address ``text`` names, in canonical form, or ``None`` if it names none.

    Accepts ``1.2.3.4``, ``1.2.3.4:80``, ``2001:db8::1``, ``[2001:db8::1]``,
    ``[2001:db8::1]:443`` and ``fe80::1%eth0``, with surrounding whitespace.
    """
    text = text.strip()
    if m := _BRACKETED.fullmatch(text):
        text = m.group(1)
        if ":" not in text:  # brackets are for IPv6 only (RFC 3986 section 3.2.2)
            return None
    elif m := _V4_WITH_PORT.fullmatch(text):
        text = m.group(1)
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(address.packed)
    return address


def trusted_networks(value: str | Iterable[str | IPNetwork] | None) -> tuple[IPNetwork, ...]:
    """Ranges in canonical form: an IPv4-mapped range is the IPv4 range.

    ``::ffff:10.0.0.0/104`` is ``10.0.0.0/8``. An IPv6 range wider than the mapped
    block (``::/0``) contains every mapped address, so it covers all of IPv4 too.
    Raises ``ValueError`` naming the entry for anything that is not one range (a
    zone id included: a range is not tied to an interface).
    """
    one = isinstance(value, str | ipaddress.IPv4Network | ipaddress.IPv6Network)
    items = [value] if one else list(value or ())
    out: list[IPNetwork] = []
    for item in items:
        if isinstance(item, str):
            if "%" in item:
                raise ValueError(f"{item!r}: a range has no zone id")
            try:
                net: IPNetwork = ipaddress.ip_network(item.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"{item!r} is not an address range: {exc}") from exc
        elif isinstance(item, ipaddress.IPv4Network | ipaddress.IPv6Network):
            net = item
        else:
            raise ValueError(f"{item!r} is not an address range (a string like '10.0.0.0/8')")
        if isinstance(net, ipaddress.IPv6Network) and net.overlaps(_MAPPED):
            if net.prefixlen >= _MAPPED.prefixlen:
                low = int(net.network_address) & 0xFFFFFFFF
                net = ipaddress.IPv4Network((low, net.prefixlen - _MAPPED.prefixlen))
            else:
                out.append(_ALL_IPV4)
        out.append(net)
    return tuple(dict.fromkeys(out))


def is_trusted(address: Address, trusted: tuple[IPNetwork, ...]) -> bool:
    """Whether a canonical address is inside one of the canonical ranges."""
    return any(address in net for net in trusted)


def peer_is_trusted(peer: str | None, trusted: tuple[IPNetwork, ...]) -> bool:
    """Whether the immediate peer is one of the trusted proxies."""
    address = canonical_address(peer) if peer and trusted else None
    return address is not None and is_trusted(address, trusted)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]
) -> str | None:
    """The client's canonical address: the peer, unless the peer is a trusted proxy.

    Behind trusted proxies, ``X-Forwarded-For`` is read right to left (empty list
    elements skipped, RFC 9110 section 5.6.1) and the first address outside the
    trusted ranges is the client. The answer is never a trusted address: when every
    hop is trusted, there is no header, a hop is malformed, or more than
    :data:`MAX_FORWARDED_HOPS` hops would have to be read, it is ``None`` (unknown).
    ``trusted`` must come from :func:`trusted_networks`.
    """
    address = canonical_address(peer) if peer else None
    if address is None:
        return None
    if not is_trusted(address, trusted):
        return str(address)
    hops = (forwarded_for or "").rsplit(",", MAX_FORWARDED_HOPS)
    if len(hops) > MAX_FORWARDED_HOPS:
        hops = hops[1:]  # the unsplit rest lies beyond the bound
    for hop in reversed(hops):
        if not hop.strip():
            continue
        address = canonical_address(hop)
        if address is None:
            return None
        if not is_trusted(address, trusted):
            return str(address)
    return None
