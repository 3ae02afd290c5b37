"""The parameters of the built-in obligation types: ``mask``, ``tokenize``, ``limit``.

One grammar with two readers, so that what loads is exactly what can be carried out:
the policy validator reports a malformed built-in obligation as a ``PolicyError`` with
its position, and the enforcement point (:mod:`zerotrust.web.obligations`) refuses an
obligation built by hand with the same words. Other obligation types belong to the
application: a policy declares them (``obligation_types``), so that a misspelt type is
caught at load too, and zerotrust passes their parameters on unread.

* ``mask``: ``fields`` (a key name or a non-empty list of them), ``keep_last``
  (characters kept at the end, 0 to 2147483647, default 0), ``replacement`` (the text
  of a fully masked value, default ``"****"``).
* ``tokenize``: ``fields``.
* ``limit``: ``max`` (records kept, 1 to 2147483647, required), ``field`` (the key of
  the list in a JSON object; without it the data must be a list).

Field names are object keys matched at any depth, never paths: a name holding ``.``
would match nothing where a path was meant, so it is refused rather than let the value
through unmasked.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from zerotrust._describe import describe

__all__ = [
    "BUILTIN_OBLIGATIONS",
    "DEFAULT_MASK",
    "MAX_COUNT",
    "Builtin",
    "Limit",
    "Mask",
    "ParamProblem",
    "Reading",
    "Tokenize",
    "did_you_mean",
    "read_obligation",
]

DEFAULT_MASK = "****"
#: ``keep_last`` and ``max`` stay within a signed 32-bit integer, like ``max_age``.
MAX_COUNT = 2**31 - 1
_SHOWN = 40
_NOT_SHOWN = object()  # a _Fault whose message already quotes the value


@attrs.frozen
class Mask:
    """Replace the values under ``fields``; keep the last ``keep_last`` characters."""

    fields: frozenset[str]
    keep_last: int = 0
    replacement: str = DEFAULT_MASK


@attrs.frozen
class Tokenize:
    """Replace the values under ``fields`` with keyed tokens."""

    fields: frozenset[str]


@attrs.frozen
class Limit:
    """Keep the first ``max`` records of the list (the data, or ``data[field]``)."""

    max: int
    field: str | None = None


Builtin = Mask | Tokenize | Limit


@attrs.frozen
class ParamProblem:
    """One fault in a built-in obligation; ``param`` names the key at fault (``None``:
    the obligation as a whole, e.g. a required key is missing). ``unknown``: the key
    itself is the fault, not its value (so a diagnostic points at the key)."""

    param: str | None
    message: str
    unknown: bool = False


@attrs.frozen
class Reading:
    """The parameters read: ``spec`` if they are well formed, else the ``problems``.

    ``spec`` is also ``None``, with no problems, for a type that is not built in.
    """

    spec: Builtin | None
    problems: tuple[ParamProblem, ...] = ()


@attrs.frozen
class _Fault:
    """What a right value is (``message``), and the value that is not (``value``)."""

    message: str
    value: Any = _NOT_SHOWN


_Read = Callable[[Any], Any]  # the value to use, or a _Fault


def _fields(value: Any) -> frozenset[str] | _Fault:
    names = [value] if type(value) is str else value
    if type(names) not in (list, tuple) or not names:
        return _Fault("'fields' must be a field name or a non-empty list of field names", value)
    for name in names:
        if isinstance(fault := _key(name, "each entry of 'fields'"), _Fault):
            return fault
    return frozenset(names)


def _key(value: Any, what: str) -> str | _Fault:
    if type(value) is not str or not value:
        return _Fault(f"{what} must be a non-empty string", value)
    if "." in value:
        leaf = value.rpartition(".")[2] or value
        return _Fault(
            f"{what} is one key name, never a path: {_shown(value)} holds '.' "
            f"(for example {leaf!r})"
        )
    return value


def _count(name: str, minimum: int) -> _Read:
    def read(value: Any) -> int | _Fault:
        if type(value) is not int or not minimum <= value <= MAX_COUNT:
            return _Fault(
                f"{name!r} must be a whole number from {minimum} to {MAX_COUNT}, "
                f"not {_shown(value)}"
            )
        return value

    return read


def _replacement(value: Any) -> str | _Fault:
    return value if type(value) is str else _Fault("'replacement' must be a string", value)


def _field(value: Any) -> str | _Fault:
    return _key(value, "'field'")


_Grammar = tuple[Callable[..., Builtin], Mapping[str, tuple[_Read, bool]]]
_GRAMMARS: Mapping[str, _Grammar] = {
    "mask": (
        Mask,
        {
            "fields": (_fields, True),
            "keep_last": (_count("keep_last", 0), False),
            "replacement": (_replacement, False),
        },
    ),
    "tokenize": (Tokenize, {"fields": (_fields, True)}),
    "limit": (Limit, {"max": (_count("max", 1), True), "field": (_field, False)}),
}

_REQUIRED = {"fields": "the keys whose values it replaces", "max": "the records to keep"}

BUILTIN_OBLIGATIONS = frozenset(_GRAMMARS)
"""The obligation types zerotrust carries out itself (:mod:`zerotrust.web`)."""


def read_obligation(type_: str, params: Mapping[str, Any]) -> Reading:
    """Read the parameters of one obligation of type ``type_``, collecting every problem.

    A value of the wrong kind is a problem, never an exception. Types are told by
    ``type()``, so a ``str`` or ``int`` subclass is refused rather than trusted.
    """
    grammar = _GRAMMARS.get(type_) if type(type_) is str else None
    if grammar is None:
        return Reading(None)
    build, readers = grammar
    problems: list[ParamProblem] = []
    values: dict[str, Any] = {}
    for key in params:
        if key not in readers:
            allowed = ", ".join(readers)
            problems.append(
                ParamProblem(
                    key if type(key) is str else None,
                    f"unknown parameter {_shown(key)}{did_you_mean(key, readers)} "
                    f"(allowed: {allowed})",
                    unknown=True,
                )
            )
    for key, (read, required) in readers.items():
        if key not in params:
            if required:
                problems.append(ParamProblem(None, f"{key!r} is required ({_REQUIRED[key]})"))
            continue
        value = read(params[key])
        if isinstance(value, _Fault):
            shown = "" if value.value is _NOT_SHOWN else f", not {_shown(value.value)}"
            problems.append(ParamProblem(key, value.message + shown))
        else:
            values[key] = value
    if problems:
        return Reading(None, tuple(problems))
    return Reading(build(**values))


def did_you_mean(word: Any, choices: Iterable[str]) -> str:
    """``": did you mean 'max'?"`` for the choice closest to a misspelt ``word``, else ``""``.

    A choice that is a prefix of the word counts as close too (``max_rows`` → ``max``):
    a short real name with a suffix added is the usual slip, and too far apart for
    ``difflib`` alone.
    """
    if type(word) is not str or not word:
        return ""
    names = sorted(c for c in choices if c != word)
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close:
        close = [c for c in names if min(len(c), len(word)) >= 3 and _prefixed(c, word)]
    return f": did you mean {close[0]!r}?" if close else ""


def _prefixed(one: str, other: str) -> bool:
    """Whether the shorter of the two begins the longer."""
    return one.startswith(other) or other.startswith(one)


def _shown(value: Any) -> str:
    """A short, plain rendering of a parameter for a message."""
    if type(value) is bool or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if type(value) in (int, float):
        text = repr(value)
        return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."
    if type(value) is str:
        text = repr(value)
        return text if len(text) <= _SHOWN else text[: _SHOWN - 4] + "...'"
    empty = "an empty " if type(value) in (list, tuple, dict) and not value else ""
    kind = describe(value, mapping="a mapping", sequence="a list")
    return empty + kind.partition(" ")[2] if empty else kind
