"""Validated policies to a compiled, indexed set: CEL compiled once, targets indexed.

Evaluation only ever touches the policies whose target matches the request, so
decision time does not grow with unrelated policies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from itertools import chain
from typing import Any

import attrs

from zerotrust.cel import Backend, CelCompileError, CompiledBackend, Condition
from zerotrust.cel.functions import SetFunction
from zerotrust.decision import Effect, Obligation, Reason, StepUp
from zerotrust.errors import Diagnostic
from zerotrust.policy.attr_check import RequestChecker
from zerotrust.policy.attr_schema import AttributeSchemas
from zerotrust.policy.model import CelSource, PolicySpec, VariableSpec
from zerotrust.policy.positions import file_position as _file_position
from zerotrust.policy.positions import offset_position, text_offset
from zerotrust.policy.validate import Condition as FoundCondition
from zerotrust.policy.variables import ROLES, described

__all__ = [
    "CompiledPolicy",
    "CompiledRule",
    "CompiledSignal",
    "PolicySet",
    "check_conditions",
    "check_variables",
    "compile_policies",
    "library_checker",
    "revision_of",
]

_log = logging.getLogger("zerotrust")


#: The variables and derived roles a condition reads: each one's path and inlined text.
Values = tuple[tuple[str, str], ...]


@attrs.frozen
class CompiledSignal:
    ref: str
    name: str
    score: int
    condition: Condition | None
    #: For ``explain`` only (see :data:`Values`).
    values: Values = attrs.field(default=(), eq=False, repr=False)


@attrs.frozen
class CompiledRule:
    ref: str
    effect: Effect
    condition: Condition | None
    reason: str | None
    report_only: bool
    step_up: StepUp | None
    obligations: tuple[Obligation, ...]
    #: For ``explain`` only (see :data:`Values`).
    values: Values = attrs.field(default=(), eq=False, repr=False)
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
    #: The set's attribute schemas (``*.schema.yaml``), None when it has none.
    schemas: AttributeSchemas | None = attrs.field(default=None, hash=False, repr=False)
    #: The schemas compiled into request checks (see :mod:`zerotrust.policy.attr_check`).
    checker: RequestChecker | None = attrs.field(default=None, eq=False, hash=False, repr=False)
    #: The set's own CEL functions (``in_group``), for ``explain``'s variable values.
    functions: Mapping[str, SetFunction] | None = attrs.field(
        default=None, eq=False, hash=False, repr=False
    )
    #: What loading found worth saying but not refusing (the type checker's findings
    #: under ``validation: permissive``), sorted by position.
    warnings: tuple[Diagnostic, ...] = attrs.field(default=(), eq=False, hash=False, repr=False)

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


class _Memoised:
    """One load's view of a backend: each distinct condition text is compiled once.

    Rules with the same text share one condition object. That is safe because a
    compiled condition is a stateless function of the bindings it is called with;
    large policy sets repeat conditions across resource types, and this skips
    parsing and code generation for every repeat. An error is remembered too (each
    rule still gets its own diagnostic, at its own position).
    """

    def __init__(
        self,
        backend: Backend,
        functions: Mapping[str, SetFunction] | None,
        trees: dict[str, Any] | None = None,
    ) -> None:
        self._backend = backend
        self._seen: dict[str, Condition | Exception] = {}
        self.name = backend.name
        #: The set's own functions (``in_group``); passed on only when there are some,
        #: so a backend written before them still compiles every other condition.
        self._functions: dict[str, Any] = {"functions": functions} if functions else {}
        if trees is not None and isinstance(backend, CompiledBackend):
            self._functions["trees"] = trees  # syntax trees for the type checker

    def compile(
        self, source: str, *, functions: Mapping[str, SetFunction] | None = None
    ) -> Condition:
        found = self._seen.get(source)
        if found is None:
            try:
                found = self._backend.compile(source, **self._functions)
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
    functions: Mapping[str, SetFunction] | None = None,
    trees: dict[str, Any] | None = None,
    after_policy: Callable[[PolicySpec], None] | None = None,
) -> tuple[PolicySet | None, list[Diagnostic]]:
    """Compile every condition; report every CEL problem with its file position.

    ``more_sources`` are files that hold no policy but shape the set (action groups);
    ``functions`` the set's own CEL functions (``in_group``); ``trees`` receives the
    syntax trees of the compiled texts, and ``after_policy`` is called with each policy
    once its conditions are compiled (the type checker, while the trees are at hand)."""
    backend = _Memoised(backend, functions, trees)
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
        broken = check_variables(backend, spec.variables, spec.name, diagnostics)

        signals = tuple(
            CompiledSignal(
                ref=f"{spec.name}/{s.name}",
                name=s.name,
                score=s.score,
                condition=_compile_condition(
                    backend, s.when, spec.name, s.name, diagnostics, broken, forbid_risk=True
                ),
                values=_values(s.when),
            )
            for s in spec.signals
        )
        rules = tuple(
            CompiledRule(
                ref=f"{spec.name}/{r.id}",
                effect=r.effect,
                condition=_compile_condition(backend, r.when, spec.name, r.id, diagnostics, broken),
                reason=r.reason,
                report_only=r.report_only,
                step_up=r.step_up,
                obligations=tuple(
                    attrs.evolve(o, rule=f"{spec.name}/{r.id}") for o in r.obligations
                ),
                values=_values(r.when),
            )
            for r in spec.rules
        )
        compiled.append(CompiledPolicy(ordinal, spec.name, spec.description, signals, rules))
        if after_policy is not None:
            after_policy(spec)
    if diagnostics:
        return None, diagnostics
    indexed = _index(compiled, data, ordered, more_sources)
    return (attrs.evolve(indexed, functions=functions) if functions else indexed), []


def _values(source: CelSource | None) -> Values:
    return () if source is None or source.inlined is None else source.inlined.values


def _compile_condition(
    backend: Backend,
    source: CelSource | None,
    policy: str,
    rule: str,
    diagnostics: list[Diagnostic],
    broken: frozenset[str] = frozenset(),
    *,
    forbid_risk: bool = False,
) -> Condition | None:
    """Compile a condition, its variables inlined; ``broken`` are the policy's variables
    whose own errors are already reported (an error inside one is not repeated)."""
    if source is None or (source.inlined is not None and source.inlined.variables & broken):
        return None  # (a variable it reads has an error, reported at the variable)
    text = source.compiled_text
    try:
        cond = backend.compile(text)
    except CelCompileError as exc:
        found = _locate(source, text_offset(text, exc.line, exc.column), None, broken)
        if found is not None:
            line, column, where = found
            message = f"CEL: {exc.message}{where}"
            diagnostics.append(Diagnostic(source.file, line, column, message, policy, rule))
        return None
    except Exception as exc:
        _internal_error(exc, source, policy, rule, diagnostics)
        return None
    if forbid_risk and "risk" in cond.variables:
        at = text_offset(text, *_first_use(text, "risk"))
        line, column, where = _locate(source, at, None, frozenset()) or (0, 0, "")
        diagnostics.append(
            Diagnostic(
                source.file,
                line,
                column,
                f"a signal cannot read risk: the score is computed from the signals{where}",
                policy,
                rule,
            )
        )
    return cond


def _internal_error(
    exc: Exception, source: CelSource, policy: str | None, rule: str | None, out: list[Diagnostic]
) -> None:
    # Not a diagnosis the compiler made: a bug. The condition is refused (and the set
    # with it) at its own position, the other problems are still listed, and the
    # details, which are about our code and not the policy, go to the log.
    _log.error("compiling %s/%s failed", policy, rule, exc_info=exc)
    message = "CEL: this condition could not be compiled (details in the log)"
    out.append(Diagnostic(source.file, source.line, source.column, message, policy, rule))


#: A variable is checked as a condition that holds whatever its value's type.
_WRAP = ("[(", ")] != []")


def check_variables(
    backend: Backend, variables: Iterable[VariableSpec], policy: str | None, out: list[Diagnostic]
) -> frozenset[str]:
    """Report each variable's own CEL errors at its definition; the names with errors.

    A variable that fails because one it reads fails is not reported again. Also checks a
    library's variables and derived roles (``policy`` None): a role's when is a condition,
    so it must be a boolean."""
    failed: dict[str, tuple[VariableSpec, Exception]] = {}
    for variable in variables:
        wrap = ("", "") if variable.name.startswith(ROLES + ".") else _WRAP
        text = wrap[0] + variable.when.compiled_text + wrap[1]
        try:
            backend.compile(text)
        except Exception as problem:
            failed[variable.name] = (variable, problem)
    broken = frozenset(failed)
    for name, (variable, exc) in failed.items():
        source = variable.when
        if source.inlined is not None and source.inlined.variables & broken:
            continue
        if not isinstance(exc, CelCompileError):
            _internal_error(exc, source, policy, None, out)
            continue
        wrap = ("", "") if name.startswith(ROLES + ".") else _WRAP
        text = wrap[0] + source.compiled_text + wrap[1]
        inner = text_offset(text, exc.line, exc.column) - len(wrap[0])
        offset = min(max(inner, 0), len(source.compiled_text))
        said = exc.message
        if inner >= len(source.compiled_text.rstrip()) and said.startswith("syntax error"):
            said = "syntax error: unexpected end of expression"  # (the bracket _WRAP added)
        line, column, where = _locate(source, offset, name, frozenset()) or (0, 0, "")
        library = source.inlined.pieces[0].library if source.inlined else None
        message = f"CEL: {said} (in {described(name, library)}){where}"
        out.append(Diagnostic(source.file, line, column, message, policy))
    return broken


def library_checker(
    backend: Backend, functions: Mapping[str, SetFunction] | None = None
) -> Callable[[list[VariableSpec], list[Diagnostic]], frozenset[str]]:
    """:func:`check_variables` for condition libraries (their items belong to no policy)."""
    memoised = _Memoised(backend, functions)
    return lambda variables, out: check_variables(memoised, variables, None, out)


def _locate(
    source: CelSource, offset: int, own: str | None, broken: frozenset[str]
) -> tuple[int, int, str] | None:
    """Where, in the file, character ``offset`` of ``source``'s compiled text was written,
    and a note when that is inside a variable inlined there; None when it is inside a
    variable in ``broken`` (its error is reported at the variable)."""
    inlined = source.inlined
    piece = None if inlined is None else inlined.origin(offset)
    if inlined is None or piece is None:
        return (*_file_position(source, *offset_position(source.text, offset)), "")
    if piece.variable == own and piece.verbatim:
        at = piece.offset + offset - piece.start
        return (*_file_position(source, *offset_position(source.text, at)), "")
    # Inside what a reference inlined (or at the brackets around it): at the reference,
    # naming what is written there and, if deeper, the variable the error is in.
    at = piece.anchor if piece.anchor is not None else piece.offset
    outer = next((p for p in inlined.pieces if p.anchor == at and p.variable != own), piece)
    if outer.variable == own:
        return (*_file_position(source, *offset_position(source.text, at)), "")
    if piece.variable in broken or outer.variable in broken:
        return None
    where = described(outer.variable or "", outer.library)
    if piece.variable not in (own, outer.variable):
        where = f"{described(piece.variable or '', piece.library)}, which {where} reads"
    return (
        *_file_position(source, *offset_position(source.text, at)),
        f" (in {where}, inlined here)",
    )


def _first_use(text: str, name: str) -> tuple[int, int]:
    """Line and column of the first use of a variable, outside string literals."""
    for match in re.finditer(rf"(?<![\w.]){name}\b", text):
        before = text[: match.start()]
        if before.count('"') % 2 == 0 and before.count("'") % 2 == 0:
            return before.count("\n") + 1, match.start() - before.rfind("\n")
    return 1, 1


def check_conditions(
    conditions: Iterable[FoundCondition],
    backend: Backend,
    functions: Mapping[str, SetFunction] | None = None,
) -> list[Diagnostic]:
    """CEL diagnostics for the conditions of a document that failed validation."""
    backend = _Memoised(backend, functions)
    conditions = list(conditions)
    diagnostics: list[Diagnostic] = []
    broken: dict[str | None, frozenset[str]] = {}
    for c in conditions:
        if c.is_variable and c.owner is not None:
            found: list[Diagnostic] = []
            variable = VariableSpec(c.owner, c.source, c.source.line, c.source.column)
            failed = check_variables(backend, [variable], c.policy or "", found)
            broken[c.policy] = broken.get(c.policy, frozenset()) | failed
            diagnostics.extend(attrs.evolve(d, policy=c.policy) for d in found)
    for c in conditions:
        if c.is_variable:
            continue
        found = []
        _compile_condition(
            backend,
            c.source,
            c.policy or "",
            c.owner or "",
            found,
            broken.get(c.policy, frozenset()),
            forbid_risk=c.is_signal,
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
