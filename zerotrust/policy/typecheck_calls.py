"""The overloads of CEL's operators and functions, as both backends implement them.

Each function here takes the argument types and answers the result type, or None when
no overload takes them (the checker then reports ``no such overload`` at the call).
``dyn`` matches every parameter; a result that depends on it is ``dyn``. The tables
follow what the run time does, which a property test holds them to: numbers of any
kind compare with each other by value, but arithmetic never mixes int, uint and double.
"""

from __future__ import annotations

from collections.abc import Sequence

from zerotrust.policy.typecheck_types import DYN, ListT, MapT, ObjT, Prim, Type, join

__all__ = ["arithmetic", "call", "compare", "format_problem", "negate", "shown"]

_BOOL = Prim("bool")
_INT = Prim("int")
_STRING = Prim("string")
_NUMERIC = frozenset({"int", "uint", "double", "number"})
_ORDERED_ALIKE = frozenset({"string", "bytes", "bool", "timestamp", "duration"})
_ARITH = {
    "+": frozenset({"int", "uint", "double", "string", "bytes", "duration"}),
    "-": frozenset({"int", "uint", "double", "duration"}),
    "*": frozenset({"int", "uint", "double"}),
    "/": frozenset({"int", "uint", "double"}),
    "%": frozenset({"int", "uint"}),
}
#: (operator, left, right) -> result, for the time types.
_TIME = {
    ("+", "timestamp", "duration"): "timestamp",
    ("+", "duration", "timestamp"): "timestamp",
    ("-", "timestamp", "timestamp"): "duration",
    ("-", "timestamp", "duration"): "timestamp",
}


def shown(types: Sequence[Type]) -> str:
    return ", ".join(str(t) for t in types)


def _name(t: Type) -> str | None:
    return t.name if isinstance(t, Prim) else None


def _is(t: Type, *names: str) -> bool:
    return isinstance(t, Prim) and t.name in ("dyn", *names)


def compare(left: Type, right: Type) -> Type | None:
    """``<``, ``<=``, ``>``, ``>=``: numbers with numbers, otherwise alike with alike."""
    a, b = _name(left), _name(right)
    if a == "dyn" or b == "dyn":
        return _BOOL
    if a is None or b is None:
        return None
    if a in _NUMERIC and b in _NUMERIC:
        return _BOOL
    return _BOOL if a == b and a in _ORDERED_ALIKE else None


def arithmetic(op: str, left: Type, right: Type) -> Type | None:
    """``+ - * / %``: operands of one type (a ``number`` may be either int or double,
    so it is never one), lists concatenate, timestamps and durations combine."""
    if op == "+" and isinstance(left, ListT | Prim) and isinstance(right, ListT | Prim):
        if isinstance(left, ListT) and isinstance(right, ListT):
            return ListT(join(left.elem, right.elem))
        if isinstance(left, ListT) or isinstance(right, ListT):
            other = right if isinstance(left, ListT) else left
            return (left if isinstance(left, ListT) else right) if other == DYN else None
    a, b = _name(left), _name(right)
    if a is None or b is None:
        return None
    if a == "dyn" or b == "dyn":
        known = b if a == "dyn" else a
        return DYN if known == "dyn" or _could(op, known) else None
    if a == b and a in _ARITH[op]:
        return Prim(a)
    found = _TIME.get((op, a, b))
    return Prim(found) if found else None


def _could(op: str, known: str) -> bool:
    """Whether some overload of ``op`` takes a ``known`` operand (the other is dyn)."""
    if known in _ARITH[op]:
        return True
    return any(o == op and known in (x, y) for o, x, y in _TIME)


def negate(operand: Type) -> Type | None:
    return operand if _is(operand, "int", "double", "number") else None


def _size(arg: Type) -> Type | None:
    if isinstance(arg, ListT | MapT | ObjT) or _is(arg, "string", "bytes"):
        return _INT
    return None


_CONVERSIONS: dict[str, tuple[frozenset[str], str]] = {
    "int": (frozenset({"int", "uint", "double", "number", "string", "timestamp", "bool"}), "int"),
    "uint": (frozenset({"int", "uint", "double", "number", "string", "bool"}), "uint"),
    "double": (frozenset({"int", "uint", "double", "number", "string"}), "double"),
    "string": (
        frozenset(
            {
                "int",
                "uint",
                "double",
                "number",
                "string",
                "bytes",
                "bool",
                "timestamp",
                "duration",
                "net.IP",
                "net.CIDR",
            }
        ),
        "string",
    ),
    "bytes": (frozenset({"string", "bytes"}), "bytes"),
    "bool": (frozenset({"bool", "string"}), "bool"),
    "timestamp": (frozenset({"string", "timestamp", "int"}), "timestamp"),
    "duration": (frozenset({"string", "duration"}), "duration"),
    "ip": (frozenset({"string", "net.IP", "net.CIDR"}), "net.IP"),
    "cidr": (frozenset({"string", "net.CIDR"}), "net.CIDR"),
    "isIP": (frozenset({"string"}), "bool"),
    "isCIDR": (frozenset({"string"}), "bool"),
    "ip.isCanonical": (frozenset({"string"}), "bool"),
    "ip_is_private": (frozenset({"string"}), "bool"),
}
_STRING_TESTS = frozenset({"contains", "startsWith", "endsWith", "matches"})
_ACCESSORS = frozenset(
    {
        "getFullYear",
        "getMonth",
        "getDate",
        "getDayOfMonth",
        "getDayOfWeek",
        "getDayOfYear",
        "getHours",
        "getMinutes",
        "getSeconds",
        "getMilliseconds",
    }
)
_DURATION_ACCESSORS = frozenset({"getHours", "getMinutes", "getSeconds", "getMilliseconds"})
#: Methods of addresses and ranges: name -> (receiver, argument types, result).
_NETWORK: dict[str, tuple[str, tuple[frozenset[str], ...], str]] = {
    "family": ("net.IP", (), "int"),
    "isUnspecified": ("net.IP", (), "bool"),
    "isLoopback": ("net.IP", (), "bool"),
    "isGlobalUnicast": ("net.IP", (), "bool"),
    "isLinkLocalMulticast": ("net.IP", (), "bool"),
    "isLinkLocalUnicast": ("net.IP", (), "bool"),
    "containsIP": ("net.CIDR", (frozenset({"net.IP", "string"}),), "bool"),
    "containsCIDR": ("net.CIDR", (frozenset({"net.CIDR", "string"}),), "bool"),
    "masked": ("net.CIDR", (), "net.CIDR"),
    "prefixLength": ("net.CIDR", (), "int"),
    "ip": ("net.CIDR", (), "net.IP"),
}


#: The format of string each conversion reads, and the conversion of each format.
_READS = {"ip": "ip", "cidr": "cidr", "timestamp": "date-time", "duration": "duration"}
_READ_BY = {f: c for c, f in _READS.items()}


def format_problem(name: str, args: Sequence[Type], method: bool) -> str | None:
    """A string of a declared format given to the conversion of another: it never
    parses (a plain string may hold anything, so it is not judged)."""
    if method and name in ("containsIP", "containsCIDR") and len(args) == 2:
        wanted, given = name.removeprefix("contains").lower(), args[1]
    elif not method and name in _READS and len(args) == 1:
        wanted, given = _READS[name], args[0]
    else:
        return None
    if not isinstance(given, Prim) or given.format in (None, wanted):
        return None
    return (
        f"{name}() never reads a string of format {given.format} (the schema's): "
        f"read it with {_READ_BY[given.format]}()"
    )


def call(name: str, args: Sequence[Type], method: bool) -> Type | None:
    """A function (``size(x)``) or method (``x.size()``, the receiver first in ``args``)."""
    if name == "dyn" and len(args) == 1 and not method:
        return DYN
    if name == "type" and len(args) == 1 and not method:
        return Prim("type")
    if name == "size" and len(args) == 1:
        return _size(args[0])
    if name in _CONVERSIONS and len(args) == 1 and not method:
        accepted, result = _CONVERSIONS[name]
        return Prim(result) if _is(args[0], *accepted) else None
    if name in _STRING_TESTS and len(args) == 2:  # s.contains(t) or contains(s, t)
        return _BOOL if all(_is(a, "string") for a in args) else None
    if name in _ACCESSORS and method and len(args) in (1, 2):
        # A time zone (null: UTC) for a timestamp; a duration takes none but null.
        zone = ("string", "null") if _is(args[0], "timestamp") else ("null",)
        if len(args) == 2 and not _is(args[1], *zone):
            return None
        if _is(args[0], "timestamp") or (name in _DURATION_ACCESSORS and _is(args[0], "duration")):
            return _INT
        return None
    if name == "ip_in_cidr" and len(args) == 2 and not method:
        return _BOOL if _is(args[0], "string") and _strings(args[1]) else None
    if name == "in_group" and len(args) == 2 and not method:
        # A member id, or a list of group names; the group is named by a string.
        return _BOOL if _strings(args[0]) and _is(args[1], "string") else None
    if name in _NETWORK and method:
        receiver, params, result = _NETWORK[name]
        if len(args) != len(params) + 1 or not _is(args[0], receiver):
            return None
        if all(_is(a, *p) for a, p in zip(args[1:], params, strict=True)):
            return Prim(result)
        return None
    if name in _KNOWN:
        return None
    # Every name the compiler accepts is typed above: any other is refused by the
    # compiler (unsupported function), which reports it; the checker stays silent.
    return DYN


def _strings(t: Type) -> bool:
    """A string, or a list of strings (``ip_in_cidr``'s ranges, ``in_group``'s groups)."""
    return _is(t, "string") or (isinstance(t, ListT) and _is(t.elem, "string"))


_KNOWN = frozenset(
    {"dyn", "type", "size", "ip_in_cidr", "in_group"}
    | set(_CONVERSIONS)
    | _STRING_TESTS
    | _ACCESSORS
) | frozenset(_NETWORK)
