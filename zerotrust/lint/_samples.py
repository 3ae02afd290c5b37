"""Concrete requests that settle most questions before the solver is asked.

A question about a pair of rules ("are these conditions equivalent?", "does this deny
match whenever that allow does?") is a search for one request on which the answer is no.
Such a request, run through the engine's own compiled conditions, refutes the pair
outright: the encoding describes every real request, so the solver would have found it
too and given no finding. Only the pairs no sample refutes go to the solver, so this
removes queries, never findings. Samples are the solver's model of each rule's condition
(as the request data it describes) and variants of it with each value the rule compares
an attribute with, and the values just beside it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Iterator
from typing import Any

import lark
import z3  # type: ignore[import-untyped, import-not-found, unused-ignore]

from zerotrust.cel import default_backend
from zerotrust.cel._backend import Condition
from zerotrust.cel._codegen_base import literal_value
from zerotrust.errors import ZeroTrustError
from zerotrust.lint._values import INT_MAX, INT_MIN, double_of, string_of

__all__ = [
    "ERROR",
    "FALSE",
    "TRUE",
    "UNSURE",
    "Samples",
    "extremes",
    "literals",
    "request_of",
    "variants",
]

#: Outcomes of a condition on a sample: true, false, an error, or not known (an
#: unexpected exception, or a sample the engine refused): such a sample refutes nothing.
TRUE, FALSE, ERROR, UNSURE = "t", "f", "e", "?"
_NOW = datetime.datetime(2026, 1, 1, 12, 0, tzinfo=datetime.UTC)


def _base_variables() -> dict[str, Any]:
    """What a request holds when a sample says nothing else (as an engine binds it)."""
    return {
        "subject": {"type": "user", "id": "someone", "properties": {}},
        "action": {"name": "read", "properties": {}},
        "resource": {"type": "record", "id": None, "properties": {}},
        "device": {},
        "context": {},
        "behavior": {},
        "risk": {"score": 0, "signals": []},
    }


def _merge(into: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _put(out: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    node = out
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if not isinstance(node.get(parts[-1]), dict) or value != {}:
        node[parts[-1]] = value


def request_of(
    model: Any, paths: dict[tuple[str, ...], dict[str, Any]], read: Iterable[Any] | None = None
) -> dict[str, Any] | None:
    """The values ``model`` gives the attribute paths (those in ``read``, if given) as
    nested request data; None if one is a double no request holds (NaN, infinity)."""
    out: dict[str, Any] = {}
    wanted = None if read is None else set(read)
    for parts in sorted(paths, key=lambda p: (len(p), p)):
        v = paths[parts]
        if (wanted is not None and parts not in wanted) or len(parts) < 2:
            continue
        if not _true(model, v["has"]):
            continue
        value: Any = {}
        if _true(model, v["is_int"]):
            value = model.eval(v["int"], model_completion=True).as_long()
        elif _true(model, v["is_string"]):
            value = string_of(model, v["string"])
        elif _true(model, v["is_bool"]):
            value = _true(model, v["bool"])
        elif _true(model, v["is_double"]):
            value = double_of(model.eval(v["double"], model_completion=True))
            if not math.isfinite(value):
                return None
        _put(out, parts, value)
    return out


def _true(model: Any, formula: Any) -> bool:
    return bool(z3.is_true(model.eval(formula, model_completion=True)))


def literals(tree: Any) -> list[Any]:
    """The int, double and string literals of a parsed condition, in order, once each."""
    found: list[Any] = []
    seen: set[tuple[type, Any]] = set()
    tokens = tree.scan_values(lambda t: isinstance(t, lark.Token)) if tree is not None else []
    for token in tokens:
        if token.type not in ("INT_LIT", "FLOAT_LIT", "STRING_LIT"):
            continue
        try:
            value = literal_value(token)
        except Exception:
            continue
        if isinstance(value, (int, float, str)) and (type(value), value) not in seen:
            seen.add((type(value), value))
            found.append(value)
    return found


def _near(value: Any) -> list[Any]:
    """``value`` and the values just beside it, for a path compared with it."""
    if isinstance(value, int):
        return [v for v in (value - 1, value, value + 1) if INT_MIN <= v <= INT_MAX]
    if isinstance(value, float):
        if not math.isfinite(value):
            return []
        return [math.nextafter(value, -math.inf), value, math.nextafter(value, math.inf)]
    return [value, value + "~", ""]


def variants(
    sample: dict[str, Any], values: list[Any], read: frozenset[Any]
) -> Iterator[dict[str, Any]]:
    """``sample`` with one attribute the condition reads at a time set to each value near
    one of ``values`` (the comparisons the condition makes, and their edges): of the
    kind it has in ``sample`` (a number, a string), or of any kind if it has none there."""
    leaves = [p for p in read if isinstance(p, tuple) and len(p) > 1]
    parents = {p[:-1] for p in leaves}
    for parts in sorted(p for p in leaves if p not in parents):
        if parts[0] not in ("subject", "action", "resource", "device", "context"):
            continue  # risk and behavior: as the model says (risk.score is bounded)
        current = _get(sample, parts)
        for literal in values:
            if current is not _ABSENT and _kind(literal) != _kind(current):
                continue
            for value in _near(literal):
                if value != current or type(value) is not type(current):
                    copy = _copy(sample)
                    _put(copy, parts, value)
                    yield copy


_ABSENT = object()


def _kind(value: Any) -> str:
    """Ints and doubles compare with each other: one kind for choosing variants."""
    return "number" if type(value) in (int, float) else type(value).__name__


def _get(node: Any, parts: tuple[str, ...]) -> Any:
    for part in parts:
        if not isinstance(node, dict) or part not in node:
            return _ABSENT
        node = node[part]
    return _ABSENT if isinstance(node, dict) else node


def _leaves(node: dict[str, Any], prefix: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Any]]:
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, (*prefix, key))
        elif not isinstance(value, bool):
            yield (*prefix, key), value


def _copy(node: dict[str, Any]) -> dict[str, Any]:
    return {k: _copy(v) if isinstance(v, dict) else v for k, v in node.items()}


class Samples:
    """Sample requests, bound once each, and the outcome of each condition on each."""

    def __init__(self) -> None:
        self._backend = default_backend()
        self._bindings: list[Any] = []
        self._compiled: dict[str, Condition | None] = {}
        self._outcomes: dict[tuple[str, int], str] = {}

    def add(self, sample: dict[str, Any]) -> int | None:
        """The index of a new sample holding ``sample``'s values, or None if refused."""
        if not _is_plain(sample):
            return None
        variables = _base_variables()
        _merge(variables, sample)
        variables["data"] = {}
        variables["now"] = _NOW
        try:
            bindings = self._backend.bind(variables)
        except Exception:
            return None
        self._bindings.append(bindings)
        return len(self._bindings) - 1

    def outcome(self, source: str, index: int) -> str:
        """``TRUE``, ``FALSE``, ``ERROR`` or ``UNSURE`` for condition ``source``."""
        key = (source, index)
        found = self._outcomes.get(key)
        if found is not None:
            return found
        if source not in self._compiled:
            try:
                self._compiled[source] = self._backend.compile(source)
            except ZeroTrustError:
                self._compiled[source] = None
        condition = self._compiled[source]
        result = UNSURE
        if condition is not None:
            try:
                value = condition(self._bindings[index])
            except ZeroTrustError:
                result = ERROR
            except Exception:
                result = UNSURE
            else:
                result = TRUE if value is True else FALSE if value is False else UNSURE
        self._outcomes[key] = result
        return result


def _is_plain(value: Any) -> bool:
    """Only what a request can hold: no lone surrogates, no NaN or infinity."""
    if isinstance(value, dict):
        return all(_is_plain(k) and _is_plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_plain(v) for v in value)
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, float):
        return math.isfinite(value)
    return True


def extremes(
    sample: dict[str, Any], values: list[Any], read: frozenset[Any]
) -> Iterator[dict[str, Any]]:
    """``sample`` with each number it holds (of the paths in ``read``) past every one of
    ``values`` of its type, above and below: one at a time, then all at once."""
    numbers = [
        (parts, current)
        for parts, current in _leaves(sample, ())
        if parts in read and parts[0] not in ("risk", "behavior")
        if isinstance(current, (int, float))
    ]
    for side in (max, min):
        together = _copy(sample)
        for parts, current in numbers:
            same = [v for v in values if type(v) is type(current)]
            if not same:
                continue
            edge = side(same)
            value = edge + 1 if side is max else edge - 1
            if isinstance(current, int) and not INT_MIN <= value <= INT_MAX:
                continue
            one = _copy(sample)
            _put(one, parts, value)
            _put(together, parts, value)
            yield one
        yield together
