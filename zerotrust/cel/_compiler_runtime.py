"""CEL semantics on plain Python values, for the code the compiler generates.

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
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NoReturn

import attrs
import re2

__all__ = [
    "BOOL",
    "BYTES",
    "DOUBLE",
    "DURATION",
    "INT",
    "LIST",
    "MAP",
    "NULL_TYPE",
    "STRING",
    "TIMESTAMP",
    "TYPE",
    "TYPE_IDENTS",
    "UINT",
    "CelError",
    "CelType",
    "CelUint",
    "kind_of",
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
    }
)
_NUMERIC = frozenset({INT, UINT, DOUBLE})
_NUMBER_TYPES = frozenset({int, CelUint, float})
# Same-type values whose Python == and < are CEL's.
_PLAIN = frozenset({int, CelUint, float, str, bytes, bool, datetime.datetime, datetime.timedelta})
_PLAIN_EQ = _PLAIN | {type(None), CelType}


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
    tb = type(b)
    if ta is tb and ta in _PLAIN:
        return bool(a < b)
    return _order(a, b, "_<_") < 0


def le(a: Any, b: Any) -> bool:
    ta = type(a)
    tb = type(b)
    if ta is tb and ta in _PLAIN:
        return bool(a <= b)
    return _order(a, b, "_<=_") <= 0


def gt(a: Any, b: Any) -> bool:
    ta = type(a)
    tb = type(b)
    if ta is tb and ta in _PLAIN:
        return bool(a > b)
    return _order(a, b, "_>_") > 0


def ge(a: Any, b: Any) -> bool:
    ta = type(a)
    tb = type(b)
    if ta is tb and ta in _PLAIN:
        return bool(a >= b)
    return _order(a, b, "_>=_") >= 0


def _order(a: Any, b: Any, op: str) -> int:
    """-1/0/1, or 2 for "unordered" (NaN), for values of subclassed Python types."""
    ka = kind_of(a)
    kb = kind_of(b)
    numeric = ka in _NUMERIC and kb in _NUMERIC
    if not numeric and (ka is not kb or ka not in {STRING, BYTES, BOOL, TIMESTAMP, DURATION}):
        no_overload(op, a, b)
    if numeric and (ka is DOUBLE or kb is DOUBLE):
        a, b = float(a), float(b)  # CEL compares int with double as doubles
    if a < b:
        return -1
    if a > b:
        return 1
    return 0 if a == b else 2


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
            raise CelError(f"no such key: {key!r}") from None
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
            raise CelError(f"no such key: {key!r}")
        return value
    no_overload("_[_]", container, key)


def select(container: Any, field: str) -> Any:
    """CEL ``a.f``: only maps have fields here (a PDP has no protobuf messages)."""
    if type(container) is dict or isinstance(container, Mapping):
        try:
            return container[field]
        except KeyError:
            raise CelError(f"no such key: {field!r}") from None
    raise CelError(f"type {_kind_name(container)} has no field {field!r}")


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
            raise CelError(f"duplicate map key {key!r}")
        out[key] = value
    return out


# --- arithmetic ---------------------------------------------------------------------------


def _int(r: int) -> int:
    if INT_MIN <= r <= INT_MAX:
        return r
    raise CelError("integer overflow")


def _uint(r: int) -> CelUint:
    if 0 <= r <= UINT_MAX:
        return CelUint(r)
    raise CelError("unsigned integer overflow")


def _duration(d: datetime.timedelta) -> datetime.timedelta:
    """Durations computed by arithmetic fit int64 nanoseconds (about 292 years), as in cel-go."""
    if -_ARITH_DURATION_MAX <= d <= _ARITH_DURATION_MAX:
        return d
    raise CelError("duration out of range")


def _timestamp(t: Any) -> datetime.datetime:
    try:
        return t.astimezone(_UTC)  # type: ignore[no-any-return]
    except OverflowError:
        raise CelError("timestamp out of range") from None


def add(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is int and type(b) is int:
        r = a + b
        if INT_MIN <= r <= INT_MAX:
            return r
        raise CelError("integer overflow")
    ka = kind_of(a)
    kb = kind_of(b)
    try:
        if ka is kb:
            if ka is INT:
                return _int(a + b)
            if ka is UINT:
                return _uint(a + b)
            if ka is DOUBLE or ka is STRING or ka is BYTES:
                return a + b
            if ka is LIST:
                return [*a, *b]
            if ka is DURATION:
                return _duration(a + b)
        elif (ka is TIMESTAMP and kb is DURATION) or (ka is DURATION and kb is TIMESTAMP):
            return _timestamp(a + b)
    except OverflowError:
        raise CelError("timestamp out of range") from None
    no_overload("_+_", a, b)


def sub(a: Any, b: Any) -> Any:
    ta = type(a)
    if ta is int and type(b) is int:
        r = a - b
        if INT_MIN <= r <= INT_MAX:
            return r
        raise CelError("integer overflow")
    ka = kind_of(a)
    kb = kind_of(b)
    try:
        if ka is kb:
            if ka is INT:
                return _int(a - b)
            if ka is UINT:
                return _uint(a - b)
            if ka is DOUBLE:
                return a - b
            if ka is DURATION:
                return _duration(a - b)
            if ka is TIMESTAMP:
                return _duration(a - b)
        elif ka is TIMESTAMP and kb is DURATION:
            return _timestamp(a - b)
    except OverflowError:
        raise CelError("timestamp out of range") from None
    no_overload("_-_", a, b)


def mul(a: Any, b: Any) -> Any:
    ka = kind_of(a)
    if ka is kind_of(b):
        if ka is INT:
            return _int(a * b)
        if ka is UINT:
            return _uint(a * b)
        if ka is DOUBLE:
            return a * b
    no_overload("_*_", a, b)


def div(a: Any, b: Any) -> Any:
    ka = kind_of(a)
    if ka is kind_of(b):
        if ka is INT or ka is UINT:
            if b == 0:
                raise CelError("division by zero")
            q = abs(a) // abs(b)
            if (a < 0) != (b < 0):
                q = -q
            return _int(q) if ka is INT else _uint(q)
        if ka is DOUBLE:
            if b == 0.0:
                if a == 0.0 or math.isnan(a):
                    return math.nan
                return math.copysign(math.inf, a) * math.copysign(1.0, b)
            return a / b
    no_overload("_/_", a, b)


def mod(a: Any, b: Any) -> Any:
    ka = kind_of(a)
    if ka is kind_of(b) and (ka is INT or ka is UINT):
        if b == 0:
            raise CelError("modulus by zero")
        if ka is INT and a == INT_MIN and b == -1:
            raise CelError("integer overflow")
        r = abs(a) % abs(b)
        return (-r if a < 0 else r) if ka is INT else CelUint(r)
    no_overload("_%_", a, b)


def neg(a: Any) -> Any:
    ka = kind_of(a)
    if ka is INT:
        return _int(-a)
    if ka is DOUBLE:
        return -a
    no_overload("-_", a)


def not_(a: Any) -> bool:
    if a is True:
        return False
    if a is False:
        return True
    no_overload("!_", a)


def not_bool(a: Any) -> CelError:
    """The error for a non-bool operand of ``&&``, ``||``, ``?:`` or a macro predicate."""
    return CelError(f"no such overload: expected bool, got {_kind_name(a)}")


def truth(a: Any) -> bool:
    """A condition or operand of ``&&``/``||``/``!`` must be a bool."""
    if a is True or a is False:
        return a
    no_overload("bool", a)


# --- functions ----------------------------------------------------------------------------


def size(a: Any) -> int:
    kind = kind_of(a)
    if kind in (STRING, BYTES, LIST, MAP):
        return len(a)
    no_overload("size", a)


def _strings(name: str, a: Any, b: Any) -> None:
    if kind_of(a) is not STRING or kind_of(b) is not STRING:
        no_overload(name, a, b)


def contains(a: Any, b: Any) -> bool:
    if type(a) is not str or type(b) is not str:
        _strings("contains", a, b)
    return b in a


def starts_with(a: Any, b: Any) -> bool:
    if type(a) is not str or type(b) is not str:
        _strings("startsWith", a, b)
    return bool(a.startswith(b))


def ends_with(a: Any, b: Any) -> bool:
    if type(a) is not str or type(b) is not str:
        _strings("endsWith", a, b)
    return bool(a.endswith(b))


def compile_regex(pattern: str) -> Any:
    """RE2, as CEL specifies (no backtracking: a policy cannot hang the PDP)."""
    try:
        return re2.compile(pattern)
    except re2.error as exc:
        raise CelError(f"invalid regular expression {pattern!r}: {exc}") from None


def matches(text: Any, pattern: Any) -> bool:
    _strings("matches", text, pattern)
    return compile_regex(pattern).search(text) is not None


def matches_compiled(text: Any, regex: Any) -> bool:
    if type(text) is not str and kind_of(text) is not STRING:
        no_overload("matches", text, "")
    return regex.search(text) is not None


def call_extra(fn: Callable[..., bool], name: str, *args: Any) -> bool:
    """A zerotrust extra function: ``ValueError`` is a CEL error, the result a bool."""
    try:
        result = fn(*args)
    except ValueError as exc:
        raise CelError(f"{name}(): {exc}") from None
    if result is not True and result is not False:
        raise CelError(f"{name}() did not return a bool")
    return result


# --- conversions --------------------------------------------------------------------------

_INT_TEXT = re.compile(r"[+-]?[0-9]+")
_UINT_TEXT = re.compile(r"\+?[0-9]+")
_FLOAT_TEXT = re.compile(
    r"[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)", re.IGNORECASE
)
_TRUE_TEXT = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE_TEXT = frozenset({"0", "f", "F", "false", "FALSE", "False"})


def to_int(a: Any) -> int:
    kind = kind_of(a)
    if kind is INT:
        return int(a)
    if kind is UINT:
        return _int(int(a))
    if kind is BOOL:
        return int(a)
    if kind is DOUBLE:
        if math.isfinite(a) and -(2.0**63) < a < 2.0**63:
            return int(a)
        raise CelError("double out of int64 range")
    if kind is STRING:
        if _INT_TEXT.fullmatch(a.strip()):
            return _int(int(a))
        raise CelError(f"cannot convert {a!r} to int")
    if kind is TIMESTAMP:
        return _int((a - _EPOCH) // _ONE_SECOND)
    no_overload("int", a)


def to_uint(a: Any) -> CelUint:
    kind = kind_of(a)
    if kind is UINT or kind is INT or kind is BOOL:
        return _uint(int(a))
    if kind is DOUBLE:
        if math.isfinite(a) and -1.0 < a < 2.0**64:
            return CelUint(int(a))
        raise CelError("double out of uint64 range")
    if kind is STRING:
        if _UINT_TEXT.fullmatch(a.strip()):
            return _uint(int(a))
        raise CelError(f"cannot convert {a!r} to uint")
    no_overload("uint", a)


def to_double(a: Any) -> float:
    kind = kind_of(a)
    if kind in _NUMERIC:
        return float(a)
    if kind is STRING:
        if _FLOAT_TEXT.fullmatch(a):
            return float(a)
        raise CelError(f"cannot convert {a!r} to double")
    no_overload("double", a)


def format_double(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'g', -1, 64)``, as cel-go and cel-cpp print doubles."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0.0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    if not isinstance(exponent, int):  # only NaN and infinities, handled above
        return repr(value)
    point = len(digits) + exponent  # position of the decimal point in ``text``
    exp = point - 1
    lead = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        return f"{lead}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{lead}0.{'0' * -point}{text}"
    if point >= len(text):
        return f"{lead}{text}{'0' * (point - len(text))}"
    return f"{lead}{text[:point]}.{text[point:]}"


def _fraction(micros: int) -> str:
    if micros == 0:
        return ""
    if micros % 1000 == 0:
        return f".{micros // 1000:03d}"
    return f".{micros:06d}"


def format_timestamp(ts: datetime.datetime) -> str:
    utc = ts.astimezone(_UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S").rjust(19, "0") + _fraction(utc.microsecond) + "Z"


def format_duration(d: datetime.timedelta) -> str:
    micros = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    sign = "-" if micros < 0 else ""
    seconds, rest = divmod(abs(micros), 1_000_000)
    return f"{sign}{seconds}{_fraction(rest)}s"


def to_string(a: Any) -> str:
    kind = kind_of(a)
    if kind is STRING:
        return str(a)
    if kind is INT or kind is UINT:
        return str(int(a))
    if kind is DOUBLE:
        return format_double(a)
    if kind is BOOL:
        return "true" if a else "false"
    if kind is BYTES:
        try:
            return bytes(a).decode("utf-8")
        except UnicodeDecodeError:
            raise CelError("invalid UTF-8 in bytes") from None
    if kind is TIMESTAMP:
        return format_timestamp(a)
    if kind is DURATION:
        return format_duration(a)
    no_overload("string", a)


def to_bytes(a: Any) -> bytes:
    kind = kind_of(a)
    if kind is BYTES:
        return bytes(a)
    if kind is STRING:
        return str(a).encode("utf-8")
    no_overload("bytes", a)


def to_bool(a: Any) -> bool:
    kind = kind_of(a)
    if kind is BOOL:
        return bool(a)
    if kind is STRING:
        if a in _TRUE_TEXT:
            return True
        if a in _FALSE_TEXT:
            return False
        raise CelError(f"cannot convert {a!r} to bool")
    no_overload("bool", a)


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)


def parse_timestamp(text: str) -> datetime.datetime:
    """RFC 3339; sub-microsecond digits are truncated (``datetime`` holds microseconds)."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise CelError(f"cannot parse timestamp {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micros = int((m.group(7) or "").ljust(6, "0")[:6])
    offset = datetime.timedelta(0)
    if m.group(9):
        offset = datetime.timedelta(hours=int(m.group(10)), minutes=int(m.group(11)))
        if m.group(9) == "-":
            offset = -offset
    try:
        local = datetime.datetime(year, month, day, hour, minute, second, micros, tzinfo=_UTC)
        return _timestamp(local - offset)
    except (ValueError, OverflowError):
        raise CelError(f"timestamp out of range: {text!r}") from None


def to_timestamp(a: Any) -> datetime.datetime:
    kind = kind_of(a)
    if kind is TIMESTAMP:
        return a  # type: ignore[no-any-return]
    if kind is STRING:
        return parse_timestamp(a)
    if kind is INT:
        try:
            return _EPOCH + datetime.timedelta(seconds=a)
        except OverflowError:
            raise CelError("timestamp out of range") from None
    no_overload("timestamp", a)


_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|µs|ms|s|m|h)")
_DURATION_UNIT_NS = MappingProxyType(
    {
        "ns": 1,
        "us": 1_000,
        "µs": 1_000,
        "ms": 1_000_000,
        "s": 1_000_000_000,
        "m": 60_000_000_000,
        "h": 3_600_000_000_000,
    }
)


def parse_duration(text: str) -> datetime.timedelta:
    """Go's ``time.ParseDuration`` syntax, as cel-go: ``"1h30m"``, ``"-1.5s"``, ``"0"``."""
    body = text[1:] if text[:1] in "+-" else text
    if body == "0":
        return datetime.timedelta(0)
    if not body:
        raise CelError(f"cannot parse duration {text!r}")
    nanos = Decimal(0)
    pos = 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise CelError(f"cannot parse duration {text!r}")
        nanos += Decimal(m.group(1)) * _DURATION_UNIT_NS[m.group(2)]
        pos = m.end()
    if text[:1] == "-":
        nanos = -nanos
    if abs(nanos) > _DURATION_MAX_SECONDS * 1_000_000_000:
        raise CelError(f"duration out of range: {text!r}")
    return datetime.timedelta(microseconds=int(nanos / 1000))


def to_duration(a: Any) -> datetime.timedelta:
    kind = kind_of(a)
    if kind is DURATION:
        return a  # type: ignore[no-any-return]
    if kind is STRING:
        return parse_duration(a)
    no_overload("duration", a)


def type_of(a: Any) -> CelType:
    return kind_of(a)


# --- timestamp and duration accessors -----------------------------------------------------

_OFFSET = re.compile(r"([+-]?)(\d{2}):(\d{2})")


def time_zone(name: Any) -> datetime.tzinfo:
    """An IANA zone name or a fixed ``[+-]HH:MM`` offset."""
    if kind_of(name) is not STRING:
        no_overload("timezone", name)
    m = _OFFSET.fullmatch(name)
    if m is not None:
        delta = datetime.timedelta(hours=int(m.group(2)), minutes=int(m.group(3)))
        return datetime.timezone(-delta if m.group(1) == "-" else delta)
    if name == "UTC":
        return _UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise CelError(f"unknown time zone {name!r}") from None


def _local(ts: Any, tz: Any, name: str) -> datetime.datetime:
    if kind_of(ts) is not TIMESTAMP:
        no_overload(name, ts)
    zone = _UTC if tz is None else tz if isinstance(tz, datetime.tzinfo) else time_zone(tz)
    try:
        return ts.astimezone(zone)  # type: ignore[no-any-return]
    except OverflowError:
        raise CelError("timestamp out of range") from None


def _duration_part(d: Any, name: str, tz: Any, unit_micros: int, modulo: int | None) -> int:
    if tz is not None:
        no_overload(name, d, tz)
    micros: int = (d.days * 86_400 + d.seconds) * 1_000_000 + d.microseconds
    whole = abs(micros) // unit_micros
    if modulo is not None:
        whole %= modulo
    return -whole if micros < 0 else whole


def get_full_year(ts: Any, tz: Any = None) -> int:
    return _local(ts, tz, "getFullYear").year


def get_month(ts: Any, tz: Any = None) -> int:
    return _local(ts, tz, "getMonth").month - 1


def get_date(ts: Any, tz: Any = None) -> int:
    return _local(ts, tz, "getDate").day


def get_day_of_month(ts: Any, tz: Any = None) -> int:
    return _local(ts, tz, "getDayOfMonth").day - 1


def get_day_of_week(ts: Any, tz: Any = None) -> int:
    return _local(ts, tz, "getDayOfWeek").isoweekday() % 7


def get_day_of_year(ts: Any, tz: Any = None) -> int:
    return _local(ts, tz, "getDayOfYear").timetuple().tm_yday - 1


def get_hours(ts: Any, tz: Any = None) -> int:
    if kind_of(ts) is DURATION:
        return _duration_part(ts, "getHours", tz, 3_600_000_000, None)
    return _local(ts, tz, "getHours").hour


def get_minutes(ts: Any, tz: Any = None) -> int:
    if kind_of(ts) is DURATION:
        return _duration_part(ts, "getMinutes", tz, 60_000_000, None)
    return _local(ts, tz, "getMinutes").minute


def get_seconds(ts: Any, tz: Any = None) -> int:
    if kind_of(ts) is DURATION:
        return _duration_part(ts, "getSeconds", tz, 1_000_000, None)
    return _local(ts, tz, "getSeconds").second


def get_milliseconds(ts: Any, tz: Any = None) -> int:
    if kind_of(ts) is DURATION:
        return _duration_part(ts, "getMilliseconds", tz, 1_000, 1000)
    return _local(ts, tz, "getMilliseconds").microsecond // 1000


#: Timestamp/duration accessor methods: CEL name -> implementation.
ACCESSORS: Mapping[str, Callable[..., int]] = MappingProxyType(
    {
        "getFullYear": get_full_year,
        "getMonth": get_month,
        "getDate": get_date,
        "getDayOfMonth": get_day_of_month,
        "getDayOfWeek": get_day_of_week,
        "getDayOfYear": get_day_of_year,
        "getHours": get_hours,
        "getMinutes": get_minutes,
        "getSeconds": get_seconds,
        "getMilliseconds": get_milliseconds,
    }
)

#: Conversion functions: CEL name -> implementation.
CONVERSIONS: Mapping[str, Callable[[Any], Any]] = MappingProxyType(
    {
        "int": to_int,
        "uint": to_uint,
        "double": to_double,
        "string": to_string,
        "bytes": to_bytes,
        "bool": to_bool,
        "timestamp": to_timestamp,
        "duration": to_duration,
        "type": type_of,
    }
)
