"""Functions zerotrust adds to CEL, on plain Python values so every backend shares them.

Each raises ``ValueError`` on bad input; backends turn that into a CEL error, so a
rule using it on garbage fails closed instead of silently not matching.

Every IP function reads addresses and ranges through :func:`parse_address` and
:func:`parse_range`, which follow the CEL network extension (cel-spec
``tests/simple/testdata/network_ext.textproto``, cel-go ``ext/network.go``, itself Go's
``net/netip``): an address is exactly a dotted-quad IPv4 address (no leading zeros) or
an RFC 4291 IPv6 address, in ASCII, with nothing around it; an IPv6 zone (``%eth0``)
and an IPv4-mapped IPv6 address (``::ffff:10.0.0.1``, in any spelling) are errors,
never silently the IPv4 address or a different one. A range is such an address, a
``/`` and a prefix length (decimal, no leading zeros, within the family's bits).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

from zerotrust._describe import quote

__all__ = [
    "EXTRA_FUNCTIONS",
    "LITERAL_CHECKS",
    "PRIVATE_RANGES",
    "SET_FUNCTIONS",
    "Checks",
    "Extras",
    "SetFunction",
    "function_tables",
    "in_group",
    "ip_in_cidr",
    "ip_is_private",
    "parse_address",
    "parse_interface",
    "parse_range",
]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Interface = ipaddress.IPv4Interface | ipaddress.IPv6Interface

# The longest IPv6 text (with an embedded IPv4 address) and range: longer is not one.
_MAX_ADDRESS = 45
_MAX_RANGE = _MAX_ADDRESS + 4
_ADDRESS_CHARS = frozenset("0123456789abcdefABCDEF.:")


def _text(value: Any, what: str) -> str:
    """``value`` as an exact ``str`` (a subclass's own methods are never called)."""
    if type(value) is str:
        return value
    if isinstance(value, str):
        return str.__str__(value)
    raise ValueError(f"{what} must be a string, not {type(value).__name__}")


def parse_address(text: str) -> Address:
    """The address ``text`` spells, by the rules above; ``ValueError`` naming what is wrong."""
    return _parse_address(_text(text, "ip"))


@functools.lru_cache(maxsize=4096)
def _parse_address(text: str) -> Address:
    """Client addresses repeat from request to request: parse each once (pure, bounded)."""
    shown = _shown(text)
    if "%" in text:
        raise ValueError(f"{shown}: an IP address with a zone is not allowed")
    if len(text) > _MAX_ADDRESS or not _ADDRESS_CHARS.issuperset(text):
        raise ValueError(f"not an IP address: {shown}")
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IP address: {shown}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # Never the derived IPv4 address: a message shows the input only as quote()
        # writes it, so decision-log redaction can recognise and hide it.
        raise ValueError(
            f"{shown}: an IPv4-mapped IPv6 address is not allowed; use the IPv4 address"
            " it maps (the enforcement point should send that)"
        )
    return address


def parse_range(text: str) -> Network:
    """The range ``text`` spells (host bits may be set: ``10.1.2.3/8`` is ``10.0.0.0/8``)."""
    return _parse_range(_text(text, "cidr")).network


def parse_interface(text: str) -> Interface:
    """:func:`parse_range`, keeping the address as written (``cidr('10.1.2.3/8').ip()``)."""
    return _parse_range(_text(text, "cidr"))


@functools.lru_cache(maxsize=1024)
def _parse_range(text: str) -> Interface:
    """Ranges come from policies and data, so they repeat: parse each once (pure, bounded)."""
    shown = _shown(text)
    address_text, slash, bits_text = text.partition("/")
    if not slash:
        raise ValueError(f"not a CIDR range: {shown} (expected address/prefix-length)")
    if "%" in address_text:
        raise ValueError(f"{shown}: a CIDR range with a zone is not allowed")
    if (
        len(text) > _MAX_RANGE
        or not bits_text.isascii()
        or not bits_text.isdigit()
        or (bits_text != "0" and bits_text.startswith("0"))
    ):
        raise ValueError(f"not a CIDR range: {shown}")
    try:
        address = _parse_address(address_text)
    except ValueError as exc:
        raise ValueError(f"not a CIDR range: {shown} ({exc})") from None
    bits = int(bits_text)
    if bits > address.max_prefixlen:
        raise ValueError(f"not a CIDR range: {shown} (prefix longer than {address.max_prefixlen})")
    return ipaddress.ip_interface((address, bits))


def _shown(text: str) -> str:
    return quote(text)  # the one quoting the decision log knows how to hide


def ip_in_cidr(ip: Any, cidr: Any) -> bool:
    """``ip_in_cidr(context.ip, "10.0.0.0/8")`` or with a list of ranges: in any of them.

    IPv4 and IPv6 both work; an address never matches a range of the other family.
    Every range is checked before answering, so a bad one is an error wherever it
    stands in the list (not only when the ones before it did not match).
    """
    version, value = _address_bits(_text(ip, "ip"))
    found = False
    for r in cidr if isinstance(cidr, list | tuple) else (cidr,):
        v, network, mask = _range_bits(_text(r, "cidr"))  # every one, even after a match
        if v == version and value & mask == network:
            found = True
    return found


@functools.lru_cache(maxsize=4096)
def _address_bits(text: str) -> tuple[int, int]:
    """(IP version, the address as an int): membership is then two int operations."""
    address = _parse_address(text)
    return address.version, int(address)


@functools.lru_cache(maxsize=1024)
def _range_bits(text: str) -> tuple[int, int, int]:
    """(IP version, network address, netmask) as ints."""
    network = _parse_range(text).network
    return network.version, int(network.network_address), int(network.netmask)


#: What :func:`ip_is_private` calls private: an address of a client on the organisation's
#: own networks, range -> the standard that reserves it for that use. A fixed table, so
#: the answer is the same on every Python: ``ipaddress``'s ``is_private`` follows the IANA
#: special-purpose registries, which change between Python releases (Python 3.11.2 and
#: 3.11.7 disagree on 6to4 ``2002::/16``) and take in ranges a client anywhere on the
#: internet can send from (Teredo ``2001::/32``, NAT64 ``64:ff9b::/96``).
#:
#: Left out on purpose, so they are *not* private: RFC 6598 shared address space
#: ``100.64.0.0/10`` (a carrier's NAT, not our network; overlay networks that borrow it
#: list it with ``ip_in_cidr``), ``0.0.0.0/8``, the documentation and benchmarking ranges,
#: ``240.0.0.0/4``, multicast, ``::``, the site-local ``fec0::/10`` RFC 3879 deprecated,
#: and every IPv6 range that embeds or tunnels to an IPv4 address (NAT64, 6to4, Teredo).
#: A narrower "private" is the safe side: it is what a policy trusts more.
PRIVATE_RANGES: Mapping[str, str] = MappingProxyType(
    {
        "10.0.0.0/8": "RFC 1918 private network",
        "172.16.0.0/12": "RFC 1918 private network",
        "192.168.0.0/16": "RFC 1918 private network",
        "127.0.0.0/8": "RFC 1122 loopback",
        "169.254.0.0/16": "RFC 3927 link-local",
        "::1/128": "RFC 4291 loopback",
        "fc00::/7": "RFC 4193 unique local",
        "fe80::/10": "RFC 4291 link-local",
    }
)


def ip_is_private(ip: Any) -> bool:
    """``ip_is_private(context.ip)``: whether the address is in :data:`PRIVATE_RANGES`
    (RFC 1918, RFC 4193, loopback, link-local), read by :func:`parse_address`."""
    return _is_private(_text(ip, "ip"))


@functools.lru_cache(maxsize=4096)
def _is_private(text: str) -> bool:
    """Client addresses repeat from request to request: decide each once (pure, bounded)."""
    version, value = _address_bits(text)
    return any(v == version and value & mask == net for v, net, mask in _PRIVATE_BITS)


_PRIVATE_BITS = tuple(_range_bits(r) for r in PRIVATE_RANGES)

#: name -> (implementation, number of arguments)
EXTRA_FUNCTIONS: Mapping[str, tuple[Callable[..., bool], int]] = MappingProxyType(
    {
        "ip_in_cidr": (ip_in_cidr, 2),
        "ip_is_private": (ip_is_private, 1),
    }
)


def _ranges(value: Any) -> None:
    for r in value if isinstance(value, list | tuple) else [value]:
        parse_range(r)


#: name -> a check per argument, run at load on an argument written as a literal (a
#: string, or a list of them): a bad one would fail on every request, so it is a
#: diagnostic instead. ``ValueError`` says what is wrong.
LITERAL_CHECKS: Mapping[str, tuple[Callable[[Any], Any] | None, ...]] = MappingProxyType(
    {
        "ip_in_cidr": (parse_address, _ranges),
        "ip_is_private": (parse_address,),
    }
)


def in_group(
    members: Mapping[str, frozenset[str]],
    above: Mapping[str, frozenset[str]],
    who: Any,
    group: Any,
) -> bool:
    """``in_group(subject.id, "support-leads")``: whether ``who`` is in ``group``. A string
    is a member id, looked up in ``members`` (member id -> every group it is in, through
    subgroups too); a list holds group names, each looked up in ``above`` (group name ->
    itself and every group above it). The two are never mixed: a member id equal to a
    group name is not that group, and a listed group name is not a member id. One lookup
    per name; a group not declared holds nobody."""
    wanted = _text(group, "group")
    if isinstance(who, str):
        return wanted in members.get(_text(who, "member id"), ())
    if not isinstance(who, list | tuple):
        raise ValueError(
            f"the first argument must be a member id (a string) or a list of group names, "
            f"not {type(who).__name__}"
        )
    names = [_text(name, "each listed group name") for name in who]  # all, even after a match
    return any(wanted in above.get(name, ()) for name in names)


@attrs.frozen
class SetFunction:
    """A function whose meaning the loaded policy set gives (``in_group`` reads the set's
    groups): built at load and compiled into each condition that calls it, so a call costs
    what any extra function costs. ``checks`` are as in :data:`LITERAL_CHECKS`."""

    fn: Callable[..., bool]
    arity: int
    checks: tuple[Callable[[Any], Any] | None, ...] = ()


#: Names a condition may call only when its policy set provides them (as
#: ``Backend.compile(source, functions={name: SetFunction})``): name -> why a call
#: cannot compile without it.
SET_FUNCTIONS: Mapping[str, str] = MappingProxyType(
    {"in_group": "no groups are declared (a data file's top-level key groups declares them)"}
)

Extras = Mapping[str, tuple[Callable[..., bool], int]]
Checks = Mapping[str, tuple[Callable[[Any], Any] | None, ...]]


def function_tables(functions: Mapping[str, SetFunction] | None) -> tuple[Extras, Checks]:
    """The extra functions and literal checks a compile uses: the fixed ones, plus the
    set's; ``ValueError`` for a name that is not a set function."""
    if not functions:
        return EXTRA_FUNCTIONS, LITERAL_CHECKS
    unknown = sorted(set(functions) - set(SET_FUNCTIONS))
    if unknown:
        raise ValueError(f"not functions a policy set provides: {', '.join(unknown)}")
    extras = {**EXTRA_FUNCTIONS, **{n: (f.fn, f.arity) for n, f in functions.items()}}
    checks = {**LITERAL_CHECKS, **{n: f.checks for n, f in functions.items()}}
    return MappingProxyType(extras), MappingProxyType(checks)
