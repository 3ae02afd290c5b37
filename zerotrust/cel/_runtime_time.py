"""CEL conversions and time for the generated code: ``int()``, ``string()``... and accessors.

Parsing and formatting of timestamps (RFC 3339) and durations (Go's syntax), time zones,
and the ``getHours()``-style accessors, with the tables :data:`CONVERSIONS` and
:data:`ACCESSORS` the code generator binds by CEL name.
"""

from __future__ import annotations

import datetime
import functools
import math
import re
import zoneinfo
from collections.abc import Callable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from zerotrust._describe import quote
from zerotrust.cel._runtime_ops import _int, _timestamp, _uint
from zerotrust.cel._runtime_values import (
    _DURATION_MAX_SECONDS,
    _EPOCH,
    _NUMERIC,
    _ONE_SECOND,
    _UTC,
    BOOL,
    BYTES,
    CIDR,
    DOUBLE,
    DURATION,
    INT,
    IP,
    STRING,
    TIMESTAMP,
    UINT,
    CelError,
    CelType,
    CelUint,
    kind_of,
    no_overload,
)

__all__ = [
    "ACCESSORS",
    "CONVERSIONS",
    "format_double",
    "format_duration",
    "format_timestamp",
    "get_date",
    "get_day_of_month",
    "get_day_of_week",
    "get_day_of_year",
    "get_full_year",
    "get_hours",
    "get_milliseconds",
    "get_minutes",
    "get_month",
    "get_seconds",
    "parse_duration",
    "parse_timestamp",
    "time_zone",
    "to_bool",
    "to_bytes",
    "to_double",
    "to_duration",
    "to_int",
    "to_string",
    "to_timestamp",
    "to_uint",
    "type_of",
    "zone_names",
]

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
        return _int(_integer_text(str(a), _INT_TEXT, "int"))
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
        return _uint(_integer_text(str(a), _UINT_TEXT, "uint"))
    no_overload("uint", a)


def to_double(a: Any) -> float:
    kind = kind_of(a)
    if kind in _NUMERIC:
        return float(a)
    if kind is STRING:
        if _FLOAT_TEXT.fullmatch(a):
            return float(a)
        raise CelError(f"cannot convert {_quote(a)} to double")
    no_overload("double", a)


def _integer_text(text: str, pattern: re.Pattern[str], name: str) -> int:
    """Decimal digits (ASCII, as cel-go's strconv) with an optional sign, as a Python int.

    More than 20 significant digits is out of range before converting: Python refuses
    to convert more than 4,300 digits and takes quadratic time below that.
    """
    if pattern.fullmatch(text) is None:
        raise CelError(f"cannot convert {_quote(text)} to {name}")
    if len(text.lstrip("+-").lstrip("0")) > 20:
        raise CelError(f"{name} out of range: {_quote(text)}")
    return int(text)


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
    if kind is IP:
        return str(a)
    if kind is CIDR:
        return f"{a.ip}/{a.network.prefixlen}"
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
        raise CelError(f"cannot convert {_quote(a)} to bool")
    no_overload("bool", a)


# RFC 3339 section 5.6 ``date-time``, ASCII digits only (``\\d`` would take any Unicode
# digit, and int() would read it), with section 5.6's lower-case ``t`` / ``z``.
_RFC3339 = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt]([0-9]{2}):([0-9]{2}):([0-9]{2})(?:\.([0-9]{1,9}))?"
    r"(?:[Zz]|([+-][0-9]{2}:[0-9]{2}))"
)


def parse_timestamp(text: str) -> datetime.datetime:
    """RFC 3339 ``date-time``; sub-microsecond digits are truncated (``datetime`` holds
    microseconds). The offset is within ``±23:59``, as :func:`fixed_offset` requires."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise CelError(f"cannot parse timestamp {_quote(text)}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    micros = int((m.group(7) or "").ljust(6, "0")[:6])
    offset = datetime.timedelta(0) if m.group(8) is None else _offset(m.group(8))
    if offset is None:
        raise CelError(f"timestamp {_quote(text)} has an offset beyond ±23:59")
    try:
        local = datetime.datetime(year, month, day, hour, minute, second, micros, tzinfo=_UTC)
        return _timestamp(local - offset)
    except (ValueError, OverflowError):
        raise CelError(f"timestamp out of range: {_quote(text)}") from None


def _quote(text: str) -> str:
    """A caller's string as a message quotes it: long ones cut short."""
    return quote(text)  # the one quoting the decision log knows how to hide


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
        raise CelError(f"cannot parse duration {_quote(text)}")
    nanos = Decimal(0)
    pos = 0
    while pos < len(body):
        m = _DURATION_PART.match(body, pos)
        if m is None or m.group(1) in ("", "."):
            raise CelError(f"cannot parse duration {_quote(text)}")
        nanos += Decimal(m.group(1)) * _DURATION_UNIT_NS[m.group(2)]
        pos = m.end()
    if text[:1] == "-":
        nanos = -nanos
    if abs(nanos) > _DURATION_MAX_SECONDS * 1_000_000_000:
        raise CelError(f"duration out of range: {_quote(text)}")
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

_OFFSET = re.compile(r"([+-]?)([0-9]{2}):([0-9]{2})")
# An IANA name as the tz database spells them: ``UTC``, ``Europe/Paris``, ``Etc/GMT+5``.
_ZONE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_+-]*(?:/[A-Za-z0-9][A-Za-z0-9_+-]*)*")
# In the zoneinfo directory, but not the name of a place: the host's own setting
# (``localtime``), the template for POSIX TZ strings (``posixrules``) and IANA's
# placeholder zone whose abbreviation is ``-00`` (``Factory``).
_NOT_ZONES = frozenset({"localtime", "posixrules", "Factory"})


@functools.cache
def zone_names() -> frozenset[str]:
    """The time-zone names a condition may use: the IANA tz database's, exactly as spelt.

    ``zoneinfo.available_timezones()`` (the host's tz database, or the ``tzdata``
    package), read once, without :data:`_NOT_ZONES`; it already leaves out the
    ``posix/`` and ``right/`` copies and files that are not zones. A name must be in
    this set, so a case-insensitive file system (``utc``) or a path (``../``) cannot
    make another file a zone.
    """
    return frozenset(zoneinfo.available_timezones()) - _NOT_ZONES


def _offset(text: str) -> datetime.timedelta | None:
    """``[+-]HH:MM`` as a timedelta, or None when it is not one within ``±23:59``."""
    m = _OFFSET.fullmatch(text)
    if m is None:
        return None
    hours, minutes = int(m.group(2)), int(m.group(3))
    if hours > 23 or minutes > 59:
        return None
    delta = datetime.timedelta(hours=hours, minutes=minutes)
    return -delta if m.group(1) == "-" else delta


def time_zone(name: Any) -> datetime.tzinfo:
    """A time-zone argument: ``UTC``, an IANA name (one of :func:`zone_names`), or a fixed
    offset ``[+-]HH:MM``.

    cel-spec ``doc/langdef.md`` "Timezones", with ASCII digits only and the offset
    within ``±23:59`` (as in RFC 3339 timestamps); the sign may be left out, as the
    spec's conformance tests do (``'02:00'``). Anything else is a :class:`CelError`.
    """
    if kind_of(name) is not STRING:
        no_overload("timezone", name)
    name = str(name)
    if name[:1] in "+-" or name[:1].isdigit():
        delta = _offset(name)
        if delta is None:
            raise CelError(f"invalid time zone offset {_quote(name)}: use [+-]HH:MM up to 23:59")
        return datetime.timezone(delta)
    if name == "UTC":
        return _UTC
    if _ZONE_NAME.fullmatch(name) is None or name not in zone_names():
        raise CelError(f"unknown time zone {_quote(name)}")
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        raise CelError(f"unknown time zone {_quote(name)}") from None


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
