"""Validated policies to a compiled, indexed set (:mod:`zerotrust.policy.policy_set`):
CEL compiled once, every problem located in its file, targets indexed."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from zerotrust.cel import Backend, CelCompileError, CompiledBackend, Condition
from zerotrust.cel.functions import SetFunction
from zerotrust.errors import Diagnostic
from zerotrust.policy.model import CelSource, PolicySpec, VariableSpec
from zerotrust.policy.policy_set import (
    CompiledPolicy,
    CompiledRule,
    CompiledSignal,
    PolicySet,
    Values,
)
from zerotrust.policy.positions import file_position as _file_position
from zerotrust.policy.positions import offset_position, text_offset
from zerotrust.policy.validate import Condition as FoundCondition
from zerotrust.policy.variables import ROLES, described

__all__ = [
    "check_conditions",
    "check_variables",
    "compile_policies",
    "library_checker",
    "revision_of",
]

_log = logging.getLogger("zerotrust")


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
