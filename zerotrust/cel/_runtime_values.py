"""CEL values for the generated code: types, ``kind_of``, errors, equality, containers.

Values are what JSON gives (``int``, ``float``, ``bool``, ``str``, ``None``, ``list``,
``dict``) plus ``bytes``, :class:`CelUint`, aware ``datetime`` (timestamp),
``timedelta`` (duration) and :class:`CelType`. An evaluation error is a raised
:class:`CelError` (or a builtin such as ``KeyError`` that the generated code treats
the same way), so strict operators need no checks and only ``&&``, ``||``, ``?:``
and the macros catch. Python's ``bool`` is an ``int``: every helper dispatches on
``type(x)``, never on ``isinstance(x, int)``, so ``true`` never acts as ``1``.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, NoReturn

import attrs

from zerotrust._describe import quote

__all__ = [
    "BOOL",
    "BYTES",
    "CIDR",
    "DOUBLE",
    "DURATION",
    "INT",
    "INT_MAX",
    "INT_MIN",
    "IP",
    "LIST",
    "MAP",
    "NULL_TYPE",
    "QUALIFIED_TYPES",
    "STRING",
    "TIMESTAMP",
    "TYPE",
    "TYPE_IDENTS",
    "UINT",
    "UINT_MAX",
    "CelError",
    "CelType",
    "CelUint",
    "contained",
    "eq",
    "ge",
    "gt",
    "has",
    "index",
    "iterate",
    "kind_of",
    "le",
    "lt",
    "make_map",
    "map_find",
    "ne",
    "no_overload",
    "select",
]

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1
UINT_MAX = 2**64 - 1
_DURATION_MAX_SECONDS = 315_576_000_000
_ARITH_DURATION_MAX = datetime.timedelta(microseconds=INT_MAX // 1000)
_UTC = datetime.UTC
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=_UTC)
_ONE_SECOND = datetime.timedelta(seconds=1)


class CelError(Exception):
    """An evaluation error: a CEL value that ``&&``, ``||`` and macros may absorb."""


class CelUint(int):
    """CEL ``uint``: a distinct type, so ``type(x) is int`` still means CEL ``int``."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"{int(self)}u"


@attrs.frozen
class CelType:
    """A CEL type value, as returned by ``type(x)`` and named by ``int``, ``string``..."""

    name: str

    def __str__(self) -> str:
        return self.name


INT = CelType("int")
UINT = CelType("uint")
DOUBLE = CelType("double")
BOOL = CelType("bool")
STRING = CelType("string")
BYTES = CelType("bytes")
LIST = CelType("list")
MAP = CelType("map")
NULL_TYPE = CelType("null_type")
TYPE = CelType("type")
TIMESTAMP = CelType("google.protobuf.Timestamp")
DURATION = CelType("google.protobuf.Duration")
IP = CelType("net.IP")
CIDR = CelType("net.CIDR")

#: Identifiers that denote a type value when used bare (``type(x) == int``).
TYPE_IDENTS: Mapping[str, CelType] = MappingProxyType(
    {
        "int": INT,
        "uint": UINT,
        "double": DOUBLE,
        "bool": BOOL,
        "string": STRING,
        "bytes": BYTES,
        "list": LIST,
        "map": MAP,
        "null_type": NULL_TYPE,
        "type": TYPE,
    }
)

#: Qualified type names (``net.IP``): the network extension's types.
QUALIFIED_TYPES: Mapping[str, CelType] = MappingProxyType({"net.IP": IP, "net.CIDR": CIDR})

_KINDS: Mapping[type, CelType] = MappingProxyType(
    {
        bool: BOOL,
        int: INT,
        CelUint: UINT,
        float: DOUBLE,
        str: STRING,
        bytes: BYTES,
        type(None): NULL_TYPE,
        list: LIST,
        tuple: LIST,
        dict: MAP,
        datetime.datetime: TIMESTAMP,
        datetime.timedelta: DURATION,
        CelType: TYPE,
        ipaddress.IPv4Address: IP,
        ipaddress.IPv6Address: IP,
        ipaddress.IPv4Interface: CIDR,
        ipaddress.IPv6Interface: CIDR,
    }
)
_NUMERIC = frozenset({INT, UINT, DOUBLE})
_NUMBER_TYPES = frozenset({int, CelUint, float})
# Same-type values whose Python == and < are CEL's.
_PLAIN = frozenset({int, CelUint, float, str, bytes, bool, datetime.datetime, datetime.timedelta})
_PLAIN_EQ = _PLAIN | {
    type(None),
    CelType,
    ipaddress.IPv4Address,
    ipaddress.IPv6Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv6Interface,
}
_ORDERED = frozenset({STRING, BYTES, BOOL, TIMESTAMP, DURATION})


def kind_of(value: Any) -> CelType:
    """The CEL type of a value; subclasses (a host's Mapping, pendulum) by isinstance."""
    kind = _KINDS.get(type(value))
    if kind is not None:
        return kind
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, CelUint):
        return UINT
    if isinstance(value, int):
        return INT
    for cls, found in ((float, DOUBLE), (str, STRING), (bytes, BYTES)):
        if isinstance(value, cls):
            return found
    if isinstance(value, Mapping):
        return MAP
    if isinstance(value, Sequence):
        return LIST
    if isinstance(value, datetime.datetime):
        return TIMESTAMP
    if isinstance(value, datetime.timedelta):
        return DURATION
    raise CelError(f"unsupported value of Python type {type(value).__name__}")


def no_overload(op: str, *args: Any) -> NoReturn:
    kinds = ", ".join(_kind_name(a) for a in args)
    raise CelError(f"no such overload: {op}({kinds})")


def _kind_name(value: Any) -> str:
    try:
        return kind_of(value).name
    except CelError:
        return type(value).__name__


# --- equality and ordering ----------------------------------------------------------------


def eq(a: Any, b: Any) -> bool:
    """CEL ``==``: heterogeneous (never an error); numbers compare by value."""
    ta = type(a)
    if ta is type(b) and ta in _PLAIN_EQ:
        return bool(a == b)
    return _eq_slow(a, b)


def ne(a: Any, b: Any) -> bool:
    return not eq(a, b)


def _eq_slow(a: Any, b: Any) -> bool:
    ka = kind_of(a)
    kb = kind_of(b)
    if ka in _NUMERIC and kb in _NUMERIC:
        if ka is DOUBLE or kb is DOUBLE:
            return float(a) == float(b)  # as doubles, like cel-go and cel-cpp; NaN unequal
        return bool(a == b)
    if ka is not kb:
        return False
    if ka is LIST:
        return len(a) == len(b) and all(eq(x, y) for x, y in zip(a, b, strict=True))
    if ka is MAP:
        if len(a) != len(b):
            return False
        for key, value in a.items():
            found, other = map_find(b, key)
            if not found or not eq(value, other):
                return False
        return True
    return bool(a == b)


def lt(a: Any, b: Any) -> bool:
    ta = type(a)
    if ta is type(b) and ta in _PLAIN:
        return bool(a < b)
    a, b = _ordered(a, b, "_<_")
    return bool(a < b)


def le(a: Any, b: Any) -> bool:
    ta = type(a)
    if ta is type(b) and ta in _PLAIN:
        return bool(a <= b)
    a, b = _ordered(a, b, "_<=_")
    return bool(a <= b)


def gt(a: Any, b: Any) -> bool:
    ta = type(a)
    if ta is type(b) and ta in _PLAIN:
        return bool(a > b)
    a, b = _ordered(a, b, "_>_")
    return bool(a > b)


def ge(a: Any, b: Any) -> bool:
    ta = type(a)
    if ta is type(b) and ta in _PLAIN:
        return bool(a >= b)
    a, b = _ordered(a, b, "_>=_")
    return bool(a >= b)


def _ordered(a: Any, b: Any, op: str) -> tuple[Any, Any]:
    """The operands as plain values Python's operator orders the CEL way, or no overload.

    Numbers of different types compare as doubles (as cel-go and cel-cpp do), so every
    comparison with NaN is false whatever the other operand's type; other kinds only
    with their own kind.
    """
    ka = kind_of(a)
    kb = kind_of(b)
    if ka in _NUMERIC and kb in _NUMERIC:
        if ka is DOUBLE or kb is DOUBLE:
            return float(a), float(b)
        return int(a), int(b)
    if ka is not kb or ka not in _ORDERED:
        no_overload(op, a, b)
    if ka is STRING:
        return str(a), str(b)
    if ka is BYTES:
        return bytes(a), bytes(b)
    if ka is BOOL:
        return bool(a), bool(b)
    return a, b


# --- maps, lists, fields ------------------------------------------------------------------


def map_find(m: Any, key: Any) -> tuple[bool, Any]:
    """Look ``key`` up in a CEL map: numbers by value, ``true`` never as ``1``."""
    kk = kind_of(key)
    if kk not in _NUMERIC and kk is not STRING and kk is not BOOL:
        raise CelError(f"unsupported map key type {kk.name}")
    if kk is DOUBLE and not key.is_integer():
        return False, None
    try:
        value = m[key]
    except KeyError:
        return False, None
    except TypeError:
        raise CelError(f"no such overload: _[_]({_kind_name(m)}, {kk.name})") from None
    if kk is BOOL or key in (0, 1):
        # Python finds 1 under True and True under 1: make sure the stored key agrees.
        want_bool = kk is BOOL
        if not any((type(k) is bool) == want_bool and k == key for k in m):
            return False, None
    return True, value


def index(container: Any, key: Any) -> Any:
    """CEL ``a[i]`` on lists and maps."""
    tc = type(container)
    tk = type(key)
    if tc is list and tk is int:
        if 0 <= key < len(container):
            return container[key]
        raise CelError(f"index out of range: {key}")
    if tc is dict and tk is str:
        try:
            return container[key]
        except KeyError:
            raise CelError(f"no such key: {quote(key)}") from None
    kind = kind_of(container)
    if kind is LIST:
        kk = kind_of(key)
        if kk is DOUBLE:
            if not key.is_integer():
                raise CelError(f"invalid list index {key}")
            key = int(key)
        elif kk is not INT and kk is not UINT:
            no_overload("_[_]", container, key)
        if 0 <= key < len(container):
            return container[key]
        raise CelError(f"index out of range: {key}")
    if kind is MAP:
        found, value = map_find(container, key)
        if not found:
            raise CelError(f"no such key: {quote(key)}")
        return value
    no_overload("_[_]", container, key)


def select(container: Any, field: str) -> Any:
    """CEL ``a.f``: only maps have fields here (a PDP has no protobuf messages)."""
    if type(container) is dict or isinstance(container, Mapping):
        try:
            return container[field]
        except KeyError:
            raise CelError(f"no such key: {quote(field)}") from None
    raise CelError(f"type {_kind_name(container)} has no field {quote(field)}")


def has(container: Any, field: str) -> bool:
    """``has(a.f)``: presence of a map key; an error on anything but a map."""
    if type(container) is dict or isinstance(container, Mapping):
        return field in container
    raise CelError(f"has(): type {_kind_name(container)} has no fields")


def contained(item: Any, container: Any) -> bool:
    """CEL ``item in container``."""
    if type(item) is str and type(container) in (list, dict):
        return item in container  # str == anything else is False, as in CEL
    kind = kind_of(container)
    if kind is LIST:
        ti = type(item)
        if ti is str or ti is float or ti is bytes:
            # Python's == on these agrees with CEL's, for any other element type
            return any(type(e) is ti and e == item for e in container) or (
                ti is float
                and any(type(e) in _NUMBER_TYPES and float(e) == item for e in container)
            )
        return any(eq(item, e) for e in container)
    if kind is MAP:
        return map_find(container, item)[0]
    no_overload("@in", item, container)


def iterate(container: Any) -> Any:
    """What a macro ranges over: a list's elements or a map's keys."""
    kind = kind_of(container)
    if kind is LIST or kind is MAP:
        return container
    raise CelError(f"macros range over lists and maps, not {kind.name}")


def make_map(pairs: Sequence[tuple[Any, Any]]) -> dict[Any, Any]:
    """A map literal; duplicate keys (``1`` and ``1u`` included) are an error."""
    out: dict[Any, Any] = {}
    for key, value in pairs:
        kk = kind_of(key)
        if kk not in _NUMERIC - {DOUBLE} and kk is not STRING and kk is not BOOL:
            raise CelError(f"unsupported map key type {kk.name}")
        if key in out:
            raise CelError(f"duplicate map key {quote(key)}")
        out[key] = value
    return out
