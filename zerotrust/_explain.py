"""What ``explain=True`` adds to a decision: the values each condition read, and why no
policy applied.

Only the explain path calls this module, so none of it costs a decision made without
``explain``. The values go into the trace, which callers print and may log: they are
cut short here (long strings, lists and maps, deep nesting) before anything sees them.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping
from typing import Any

from zerotrust._describe import quote
from zerotrust.cel import VARIABLES, CelCompileError, Condition, values_read
from zerotrust.cel._compiler import _error_message, compile_expression
from zerotrust.cel.functions import SetFunction
from zerotrust.decision import Risk, TraceEntry, ValueRead
from zerotrust.obligations import did_you_mean
from zerotrust.policy.policy_set import CompiledRule, PolicySet, Values
from zerotrust.request import AccessRequest

__all__ = [
    "MAX_DEPTH",
    "MAX_ITEMS",
    "MAX_TEXT",
    "Tracer",
    "bounded",
    "no_policy",
    "no_policy_for",
    "reads",
    "variable_values",
]

#: Characters of a string value shown; the rest is replaced by a count.
MAX_TEXT = 200
#: Items of a list (or keys of a map) shown; the rest are counted.
MAX_ITEMS = 20
#: Levels of nesting shown; deeper lists and maps are summarised.
MAX_DEPTH = 4
_NAMES_LISTED = 30


class Tracer:
    """Collects the trace of one decision: each signal and rule, its outcome and the
    values its condition read (from the same plain values the conditions were bound to).
    """

    __slots__ = ("_entries", "_functions", "_scope")

    def __init__(
        self,
        variables: Mapping[str, Any],
        data: Mapping[str, Any],
        behavior: Mapping[str, Any],
        now: datetime.datetime,
        functions: Mapping[str, SetFunction] | None = None,
    ) -> None:
        self._entries: list[TraceEntry] = []
        self._scope = {**variables, "data": data, "behavior": behavior, "now": now}
        self._functions = functions

    def signal(
        self,
        ref: str,
        matched: bool,
        error: str | None,
        condition: Condition | None,
        values: Values = (),
    ) -> None:
        self._add(ref, "signal", None, matched, error, condition, values)

    def rule(self, rule: CompiledRule, matched: bool, error: str | None, risk: Risk) -> None:
        if "risk" not in self._scope:  # rules see the risk the signals made
            self._scope["risk"] = {"score": risk.score, "signals": list(risk.signals)}
        kind = "report-only" if rule.report_only else "rule"
        self._add(rule.ref, kind, rule.effect.value, matched, error, rule.condition, rule.values)

    def entries(self) -> tuple[TraceEntry, ...]:
        return tuple(self._entries)

    def _add(
        self,
        ref: str,
        kind: str,
        effect: str | None,
        matched: bool,
        error: str | None,
        condition: Condition | None,
        values: Values = (),
    ) -> None:
        outcome = "error" if error is not None else ("matched" if matched else "not_matched")
        found = reads(condition, self._scope)
        named = variable_values(values, self._scope, self._functions)
        self._entries.append(TraceEntry(ref, kind, effect, outcome, error, found, named))


def reads(condition: Condition | None, scope: Mapping[str, Any]) -> tuple[ValueRead, ...]:
    """The attribute paths ``condition`` reads, each with its (bounded) value in ``scope``."""
    if condition is None:
        return ()
    source = getattr(condition, "source", None)
    if type(source) is not str:
        return ()
    return tuple(
        ValueRead(r.path, bounded(r.value)) if r.found else ValueRead(r.path, missing=True)
        for r in values_read(source, scope)
    )


def variable_values(
    values: Values, scope: Mapping[str, Any], functions: Mapping[str, SetFunction] | None = None
) -> tuple[ValueRead, ...]:
    """Each variable's or derived role's (bounded) value in ``scope``, or its error.

    Evaluated here, apart from the decision, which runs the condition with them inlined;
    each text is compiled as an expression of any type (a value need not be a boolean).
    """
    found = []
    for path, text in values:
        try:
            value = compile_expression(text, VARIABLES, functions)(scope)
        except CelCompileError as exc:  # (it compiled inside its condition: not expected)
            found.append(ValueRead(path, error=exc.message))
            continue
        except Exception as exc:
            found.append(ValueRead(path, error=_error_message(exc)))
            continue
        found.append(ValueRead(path, bounded(value)))
    return tuple(found)


def bounded(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON data small enough to print or log: long strings, lists and maps
    are cut (with a note of what was left out), timestamps become ISO 8601 text."""
    if value is None or type(value) is bool or type(value) is int:
        return value
    if type(value) is float:
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        if len(value) <= MAX_TEXT:
            return str(value)
        return f"{value[:MAX_TEXT]}... ({len(value)} characters)"
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, Mapping):
        if depth >= MAX_DEPTH:
            return f"{{...}} (a map of {len(value)})"
        out = {str(k): bounded(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
        if len(value) > MAX_ITEMS:
            out["..."] = f"{len(value) - MAX_ITEMS} more keys"
        return out
    if isinstance(value, list | tuple | set | frozenset):
        if depth >= MAX_DEPTH:
            return f"[...] (a list of {len(value)})"
        items = [bounded(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
        if len(value) > MAX_ITEMS:
            items.append(f"... {len(value) - MAX_ITEMS} more items")
        return items
    return bounded(repr(value), depth)


def no_policy(policies: PolicySet, resource_type: str, action: str) -> str | None:
    """Why no policy applies to ``resource_type`` / ``action``, with the names the set
    does know and a "did you mean"; None when some policy applies."""
    if policies.applicable(resource_type, action):
        return None
    head = f"no policy targets resource type {quote(resource_type)} with action {quote(action)}"
    types = policies.resource_types()
    if resource_type in types:
        actions = policies.action_names(resource_type)
        return f"{head}; actions for this type: {_listed(actions)}{did_you_mean(action, actions)}"
    if types:
        return f"{head}; known types: {_listed(types)}{did_you_mean(resource_type, types)}"
    actions = policies.action_names(resource_type)
    return f"{head}; known actions: {_listed(actions)}{did_you_mean(action, actions)}"


def no_policy_for(policies: PolicySet, request: Mapping[str, Any] | AccessRequest) -> str | None:
    """:func:`no_policy` for a request (raises :class:`RequestError` if it is invalid)."""
    req = AccessRequest.from_mapping(request)
    return no_policy(policies, req.resource.type, req.action.name)


def _listed(names: tuple[str, ...]) -> str:
    shown = ", ".join(names[:_NAMES_LISTED])
    if len(names) > _NAMES_LISTED:
        shown += f", ... ({len(names) - _NAMES_LISTED} more)"
    return shown or "none"
