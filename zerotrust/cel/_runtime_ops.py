"""CEL operators and functions for the generated code: arithmetic, strings, regex, extras.

Arithmetic checks int64/uint64 overflow and the duration and timestamp ranges; regular
expressions are RE2. Values and errors are those of :mod:`._runtime_values`.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from typing import Any

import re2

from zerotrust._describe import quote
from zerotrust.cel._runtime_values import (
    _ARITH_DURATION_MAX,
    _UTC,
    BYTES,
    DOUBLE,
    DURATION,
    INT,
    INT_MAX,
    INT_MIN,
    LIST,
    MAP,
    STRING,
    TIMESTAMP,
    UINT,
    UINT_MAX,
    CelError,
    CelUint,
    _kind_name,
    kind_of,
    no_overload,
)

__all__ = [
    "add",
    "call_extra",
    "compile_regex",
    "contains",
    "div",
    "ends_with",
    "matches",
    "matches_compiled",
    "mod",
    "mul",
    "neg",
    "not_",
    "not_bool",
    "size",
    "starts_with",
    "sub",
    "truth",
]

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
    """RE2, as CEL specifies (no backtracking: a policy cannot hang the PDP).

    RE2 is told not to log: by default it writes every bad pattern to stderr, outside
    :mod:`logging` and the decision log's redaction. The error names what is wrong
    (``missing )``) and quotes the pattern once, as every message quotes a value;
    the fragment RE2 adds is left out (it is a piece of the pattern, a form redaction
    could not recognise), and so is its bytes ``repr``.
    """
    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        raise CelError(f"invalid regular expression {quote(pattern)}: {_re2_reason(exc)}") from None


def _re2_reason(exc: Exception) -> str:
    """What RE2 says is wrong, as text: ``missing )`` from ``b'missing ): (x'``."""
    raw = exc.args[0] if exc.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return text.partition(": ")[0] or "not a valid RE2 pattern"


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
