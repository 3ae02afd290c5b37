"""Validated policies to a compiled, indexed set: CEL compiled once, targets indexed.

Evaluation only ever touches the policies whose target matches the request, so
decision time does not grow with unrelated policies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Iterable, Mapping
from itertools import chain
from typing import Any

import attrs

from zerotrust.cel import Backend, CelCompileError, Condition
from zerotrust.decision import Effect, Obligation, Reason, StepUp
from zerotrust.errors import Diagnostic
from zerotrust.policy.model import CelSource, PolicySpec
from zerotrust.policy.validate import Condition as FoundCondition

__all__ = [
    "CompiledPolicy",
    "CompiledRule",
    "CompiledSignal",
    "PolicySet",
    "check_conditions",
    "compile_policies",
    "revision_of",
]

_log = logging.getLogger("zerotrust")


@attrs.frozen
class CompiledSignal:
    ref: str
    name: str
    score: int
    condition: Condition | None


@attrs.frozen
class CompiledRule:
    ref: str
    effect: Effect
    condition: Condition | None
    reason: str | None
    report_only: bool
    step_up: StepUp | None
    obligations: tuple[Obligation, ...]
    #: The reason a decision gives when this rule matches and is enforced: built once
    #: here, shared by every such decision (a Reason is immutable).
    matched: Reason = attrs.field(init=False, eq=False, repr=False)

    @matched.default
    def _matched(self) -> Reason:
        return Reason(self.ref, self.effect, self.reason)


#: A rule as the decision's loop reads it: condition, rule, and which list a match
#: joins (0 deny, 1 step-up, 2 allow).
EnforcedRule = tuple[Condition | None, CompiledRule, int]
_EFFECT_INDEX = {Effect.DENY: 0, Effect.STEP_UP: 1, Effect.ALLOW: 2}


@attrs.frozen
class CompiledPolicy:
    ordinal: int
    name: str
    description: str | None
    signals: tuple[CompiledSignal, ...]
    rules: tuple[CompiledRule, ...]
    #: The rules in order, laid out for the decision's loop, or None when the policy
    #: has report-only rules (the general loop then keeps their outcomes).
    enforced: tuple[EnforcedRule, ...] | None = attrs.field(init=False, eq=False, repr=False)

    @enforced.default
    def _enforced(self) -> tuple[EnforcedRule, ...] | None:
        if any(rule.report_only for rule in self.rules):
            return None
        return tuple((rule.condition, rule, _EFFECT_INDEX[rule.effect]) for rule in self.rules)


_Bucket = tuple[CompiledPolicy, ...]
_APPLICABLE_MEMO = 4096  # (resource type, action) pairs a policy set remembers
_MEMO_CHARS = 256  # ... each pair at most this long


@attrs.frozen
class PolicySet:
    """An immutable compiled policy set; ``revision`` is a stable hash of its content."""

    policies: tuple[CompiledPolicy, ...]
    data: Mapping[str, Any] = attrs.field(hash=False)
    revision: str
    sources: tuple[str, ...]
    _exact: Mapping[tuple[str, str], _Bucket] = attrs.field(hash=False, repr=False)
    _by_resource: Mapping[str, _Bucket] = attrs.field(hash=False, repr=False)
    _by_action: Mapping[str, _Bucket] = attrs.field(hash=False, repr=False)
    _anywhere: _Bucket = attrs.field(repr=False)
    # (resource type, action) -> applicable policies: bounded, as the pairs are the
    # callers' strings; a dict's get and set are atomic, so threads may share it.
    _applicable: dict[tuple[str, str], _Bucket] = attrs.field(
        init=False, factory=dict, eq=False, hash=False, repr=False
    )

    def applicable(self, resource_type: str, action: str) -> _Bucket:
        """The policies whose target matches, in load order."""
        key = (resource_type, action)
        found = self._applicable.get(key)
        if found is None:
            found = self._find(resource_type, action)
            if len(resource_type) + len(action) <= _MEMO_CHARS:  # (keeps no long texts)
                if len(self._applicable) >= _APPLICABLE_MEMO:
                    self._applicable.clear()
                self._applicable[key] = found
        return found

    def _find(self, resource_type: str, action: str) -> _Bucket:
        buckets = [
            b
            for b in (
                self._exact.get((resource_type, action)),
                self._by_resource.get(resource_type),
                self._by_action.get(action),
                self._anywhere,
            )
            if b
        ]
        if len(buckets) == 1:
            return buckets[0]
        if not buckets:
            return ()
        return tuple(sorted(chain.from_iterable(buckets), key=lambda p: p.ordinal))

    def action_names(self, resource_type: str) -> tuple[str, ...]:
        """The action names targets name for ``resource_type``, sorted (for action search)."""
        names = {action for (resource, action) in self._exact if resource == resource_type}
        names.update(self._by_action)
        return tuple(sorted(names))

    def resource_types(self) -> tuple[str, ...]:
        """The resource types targets name, sorted (for "no policy applied" hints)."""
        return tuple(sorted({resource for resource, _ in self._exact} | set(self._by_resource)))

    @property
    def rule_count(self) -> int:
        return sum(len(p.rules) for p in self.policies)


def _file_position(source: CelSource, line: int, column: int) -> tuple[int, int]:
    """Map a 1-based position inside a CEL string to its position in the YAML file."""
    parts = source.text.split("\n")
    line = min(max(line, 1), len(parts))
    offset = sum(len(p) + 1 for p in parts[: line - 1]) + max(column, 1) - 1
    index = _raw_index(source, min(offset, len(source.text)))
    if index is None:
        return source.line, source.column
    before = source.raw[:index] if source.raw else ""
    newlines = before.count("\n")
    if not newlines:
        return source.line, source.column + index
    return source.line + newlines, index - before.rfind("\n")


def _raw_index(source: CelSource, offset: int) -> int | None:
    """Where character ``offset`` of the value was written in the raw scalar.

    Walks value and raw text together, skipping what YAML removed (quotes, escape
    backslashes, indentation, folded line breaks); None if they cannot be aligned.
    """
    raw, value = source.raw, source.text
    if raw is None:
        return None
    j = 0
    if source.style in ("|", ">"):
        j = raw.find("\n") + 1  # skip the header line: indicator, chomping, comment
    elif source.style in ("'", '"'):
        j = 1
    for i, char in enumerate(value):
        while j < len(raw) and raw[j] != char:
            j += 1
        if j >= len(raw):
            return None
        if i == offset:
            return j
        j += 1
    return j if offset >= len(value) else None


class _Memoised:
    """One load's view of a backend: each distinct condition text is compiled once.

    Rules with the same text share one condition object. That is safe because a
    compiled condition is a stateless function of the bindings it is called with;
    large policy sets repeat conditions across resource types, and this skips
    parsing and code generation for every repeat. An error is remembered too (each
    rule still gets its own diagnostic, at its own position).
    """

    def __init__(self, backend: Backend) -> None:
        self._backend = backend
        self._seen: dict[str, Condition | Exception] = {}
        self.name = backend.name

    def compile(self, source: str) -> Condition:
        found = self._seen.get(source)
        if found is None:
            try:
                found = self._backend.compile(source)
            except Exception as exc:
                found = exc
            self._seen[source] = found
        if isinstance(found, Exception):
            raise found.with_traceback(None)
        return found

    def bind(self, variables: Mapping[str, Any]) -> Any:
        return self._backend.bind(variables)

    def extend(self, bindings: Any, variables: Mapping[str, Any]) -> Any:
        return self._backend.extend(bindings, variables)


def compile_policies(
    specs: Iterable[PolicySpec],
    data: Mapping[str, Any],
    backend: Backend,
    *,
    more_sources: Iterable[str] = (),
) -> tuple[PolicySet | None, list[Diagnostic]]:
    """Compile every condition; report every CEL problem with its file position.

    ``more_sources`` are files that hold no policy but shape the set (action groups)."""
    backend = _Memoised(backend)
    diagnostics: list[Diagnostic] = []
    compiled: list[CompiledPolicy] = []
    seen: dict[str, PolicySpec] = {}
    ordered = list(specs)
    for ordinal, spec in enumerate(ordered):
        if spec.name in seen:
            first = seen[spec.name]
            diagnostics.append(
                Diagnostic(
                    spec.file,
                    spec.name_line,
                    spec.name_column,
                    f"duplicate policy name {spec.name!r} "
                    f"(first in {first.file}:{first.name_line}:{first.name_column})",
                    spec.name,
                )
            )
            continue
        seen[spec.name] = spec

        signals = tuple(
            CompiledSignal(
                ref=f"{spec.name}/{s.name}",
                name=s.name,
                score=s.score,
                condition=_compile_condition(
                    backend, s.when, spec.name, s.name, diagnostics, forbid_risk=True
                ),
            )
            for s in spec.signals
        )
        rules = tuple(
            CompiledRule(
                ref=f"{spec.name}/{r.id}",
                effect=r.effect,
                condition=_compile_condition(backend, r.when, spec.name, r.id, diagnostics),
                reason=r.reason,
                report_only=r.report_only,
                step_up=r.step_up,
                obligations=tuple(
                    attrs.evolve(o, rule=f"{spec.name}/{r.id}") for o in r.obligations
                ),
            )
            for r in spec.rules
        )
        compiled.append(CompiledPolicy(ordinal, spec.name, spec.description, signals, rules))
    if diagnostics:
        return None, diagnostics
    return _index(compiled, data, ordered, more_sources), []


def _compile_condition(
    backend: Backend,
    source: CelSource | None,
    policy: str,
    rule: str,
    diagnostics: list[Diagnostic],
    *,
    forbid_risk: bool = False,
) -> Condition | None:
    if source is None:
        return None
    try:
        cond = backend.compile(source.text)
    except CelCompileError as exc:
        line, column = _file_position(source, exc.line, exc.column)
        diagnostics.append(
            Diagnostic(source.file, line, column, f"CEL: {exc.message}", policy, rule)
        )
        return None
    except Exception as exc:
        # Not a diagnosis the compiler made: a bug. The condition is refused (and the set
        # with it) at its own position, the other problems are still listed, and the
        # details, which are about our code and not the policy, go to the log.
        _log.error("compiling %s/%s failed", policy, rule, exc_info=exc)
        message = "CEL: this condition could not be compiled (details in the log)"
        diagnostics.append(
            Diagnostic(source.file, source.line, source.column, message, policy, rule)
        )
        return None
    if forbid_risk and "risk" in cond.variables:
        line, column = _file_position(source, *_first_use(source.text, "risk"))
        diagnostics.append(
            Diagnostic(
                source.file,
                line,
                column,
                "a signal cannot read risk: the score is computed from the signals",
                policy,
                rule,
            )
        )
    return cond


def _first_use(text: str, name: str) -> tuple[int, int]:
    """Line and column of the first use of a variable, outside string literals."""
    for match in re.finditer(rf"(?<![\w.]){name}\b", text):
        before = text[: match.start()]
        if before.count('"') % 2 == 0 and before.count("'") % 2 == 0:
            return before.count("\n") + 1, match.start() - before.rfind("\n")
    return 1, 1


def check_conditions(conditions: Iterable[FoundCondition], backend: Backend) -> list[Diagnostic]:
    """CEL diagnostics for the conditions of a document that failed validation."""
    diagnostics: list[Diagnostic] = []
    for c in conditions:
        found: list[Diagnostic] = []
        _compile_condition(
            backend, c.source, c.policy or "", c.owner or "", found, forbid_risk=c.is_signal
        )
        diagnostics.extend(attrs.evolve(d, policy=c.policy, rule=c.owner) for d in found)
    return diagnostics


def revision_of(specs: Iterable[PolicySpec], data: Mapping[str, Any]) -> str:
    """A hash of what the set means: the documents and data, not comments or file order."""
    docs = sorted((s.raw for s in specs), key=lambda raw: str(raw.get("policy")))
    canonical = json.dumps(
        {"policies": docs, "data": data}, sort_keys=True, separators=(",", ":"), default=str
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:32]


def _index(
    policies: list[CompiledPolicy],
    data: Mapping[str, Any],
    specs: list[PolicySpec],
    more_sources: Iterable[str],
) -> PolicySet:
    exact: dict[tuple[str, str], list[CompiledPolicy]] = {}
    by_resource: dict[str, list[CompiledPolicy]] = {}
    by_action: dict[str, list[CompiledPolicy]] = {}
    anywhere: list[CompiledPolicy] = []
    targets = {s.name: s.target for s in specs}
    for policy in policies:
        target = targets[policy.name]
        resources, actions = target.resources, target.actions
        if resources is None and actions is None:
            anywhere.append(policy)
        elif resources is None:
            for action in sorted(actions or ()):
                by_action.setdefault(action, []).append(policy)
        elif actions is None:
            for resource in sorted(resources):
                by_resource.setdefault(resource, []).append(policy)
        else:
            for resource in sorted(resources):
                for action in sorted(actions):
                    exact.setdefault((resource, action), []).append(policy)
    return PolicySet(
        policies=tuple(policies),
        data=data,
        revision=revision_of(specs, data),
        sources=tuple(sorted({s.file for s in specs}.union(more_sources))),
        exact={k: tuple(v) for k, v in exact.items()},
        by_resource={k: tuple(v) for k, v in by_resource.items()},
        by_action={k: tuple(v) for k, v in by_action.items()},
        anywhere=tuple(anywhere),
    )
