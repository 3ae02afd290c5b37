"""The analyses: each finding is a proof (an unsat answer), never a guess.

A query that z3 answers ``unknown`` (a timeout) gives no finding. Rules are judged as the
engine combines them: any matching deny wins, then any step-up, then any allow; an allow
that errors does not match, a deny or step-up that errors does (fail closed); a signal
that errors counts. Report-only rules never change a decision, so they never shadow.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import z3  # type: ignore[import-untyped, import-not-found, unused-ignore]

from zerotrust.cel import default_backend
from zerotrust.cel._compiler import FUNCTIONS
from zerotrust.cel._syntax import parse
from zerotrust.decision import Effect
from zerotrust.errors import ZeroTrustError
from zerotrust.lint._encode import Encoder
from zerotrust.lint._model import Finding, LintOptions, LintReport
from zerotrust.lint._values import Tri, double_of, string_of
from zerotrust.policy.model import CelSource, PolicySpec, RuleSpec, Target

__all__ = ["lint_specs"]

_VARIABLE_ORDER = ("subject", "action", "resource", "device", "context", "behavior", "risk")


@attrs.frozen
class _Item:
    """A rule or signal with its encoded condition (``when`` absent: always true)."""

    ref: str
    policy: PolicySpec
    effect: Effect | None  # None: a signal
    report_only: bool
    when: CelSource | None
    line: int
    cond: Tri
    #: The paths and unknowns the condition reads.
    read: frozenset[Any] = frozenset()

    @property
    def position(self) -> tuple[str, int, int]:
        if self.when is not None:
            return self.when.file, self.when.line, self.when.column
        return self.policy.file, self.line, 1


class _Solver:
    """One z3 solver holding the axioms; each query is pushed, checked and popped."""

    def __init__(self, encoder: Encoder, options: LintOptions) -> None:
        self.encoder = encoder
        self.solver = z3.Solver()
        self.solver.set("timeout", options.timeout_ms)
        self.solver.add(*encoder.axioms)
        #: Questions answered ``unknown`` (timeouts): no finding came of them.
        self.undecided = 0

    def _check(self, formulas: tuple[Any, ...], *assumptions: Any) -> tuple[Any, Any]:
        self.solver.push()
        try:
            self.solver.add(*formulas)
            answer = self.solver.check(*assumptions)
            if answer == z3.unknown:
                self.undecided += 1
            if answer == z3.sat:
                return answer, self.solver.model()
            if answer == z3.unsat and assumptions:
                return answer, list(self.solver.unsat_core())
            return answer, None
        finally:
            self.solver.pop()

    def unsat(self, *formulas: Any) -> bool:
        """Proved impossible; ``unknown`` (a timeout) is not a proof."""
        return bool(self._check(formulas)[0] == z3.unsat)

    def answer(self, *formulas: Any) -> Any:
        """``z3.sat``, ``z3.unsat`` or ``z3.unknown``."""
        return self._check(formulas)[0]

    def model(self, *formulas: Any) -> Any | None:
        answer, model = self._check(formulas)
        return model if answer == z3.sat else None

    def core(self, base: Any, named: dict[str, Any]) -> list[str] | None:
        """The names of a set of ``named`` formulas that, with ``base``, are unsat."""
        guards = {z3.Bool(f"guard {name}"): name for name in named}
        implied = tuple(z3.Implies(g, named[n]) for g, n in guards.items())
        answer, core = self._check((base, *implied), *guards)
        if answer != z3.unsat:
            return None
        return sorted(guards[g] for g in core)


def lint_specs(specs: Sequence[PolicySpec], options: LintOptions | None = None) -> LintReport:
    """Every finding for the policies ``specs`` (already validated), in file order."""
    options = options or LintOptions()
    encoder = Encoder()
    items = list(_items(specs, encoder))
    solver = _Solver(encoder, options)
    findings: list[Finding] = []
    live: list[_Item] = []
    for item in items:
        answer = z3.sat if item.when is None else solver.answer(item.cond.t)
        if answer == z3.sat:
            live.append(item)
        elif answer == z3.unsat:
            found = _dead(item, solver)
            findings.append(found)
            if found.kind == "never-true":
                live.append(item)
        # else undecided: judged no further, lest a dead rule be called shadowed
    for item in live:
        always = _always(item, solver) if _can_always(item) else None
        if always is not None:
            findings.append(always)
    findings.extend(_shadowed(items, live, solver))
    findings.extend(_duplicates(live, solver))
    findings.sort(key=lambda f: (f.file, f.line, f.column, f.kind))
    return LintReport(tuple(findings), solver.undecided)


def _items(specs: Sequence[PolicySpec], encoder: Encoder) -> Iterator[_Item]:
    for spec in specs:
        for signal in spec.signals:
            cond = _encode(signal.when, encoder, risk_known=False)
            ref = f"{spec.name}/{signal.name}"
            read = frozenset(encoder.read)
            yield _Item(ref, spec, None, False, signal.when, signal.line, cond, read)
        for rule in spec.rules:
            cond = _encode(rule.when, encoder, risk_known=True)
            yield _item(spec, rule, cond, frozenset(encoder.read))


def _item(spec: PolicySpec, rule: RuleSpec, cond: Tri, read: frozenset[Any]) -> _Item:
    ref = f"{spec.name}/{rule.id}"
    return _Item(ref, spec, rule.effect, rule.report_only, rule.when, rule.line, cond, read)


def _encode(when: CelSource | None, encoder: Encoder, *, risk_known: bool) -> Tri:
    if when is None:
        encoder.read = set()
        return Tri(z3.BoolVal(True), z3.BoolVal(False))
    return encoder.condition(parse(when.text, FUNCTIONS).tree, risk_known=risk_known)


def _finding(item: _Item, kind: str, message: str, **more: Any) -> Finding:
    file, line, column = item.position
    return Finding(kind, file, line, column, item.ref, message, **more)


def _dead(item: _Item, solver: _Solver) -> Finding:
    """The finding for ``item``, whose condition is never true."""
    what = "signal" if item.effect is None else f"{item.effect.value} rule"
    if item.effect is Effect.ALLOW:
        return _finding(
            item, "dead-rule", "allow rule can never match: its condition is never true"
        )
    if solver.unsat(item.cond.error):
        kind = "dead-signal" if item.effect is None else "dead-rule"
        verb = "fire" if item.effect is None else "match"
        return _finding(item, kind, f"{what} can never {verb}: its condition is never true")
    verb = "fires" if item.effect is None else "matches"
    return _finding(
        item,
        "never-true",
        f"{what}'s condition is never true; it {verb} only when the condition errors (fail closed)",
    )


def _can_always(item: _Item) -> bool:
    return item.when is not None and item.effect in (Effect.DENY, Effect.STEP_UP)


def _always(item: _Item, solver: _Solver) -> Finding | None:
    if not solver.unsat(item.cond.f):
        return None
    effect = item.effect.value if item.effect is not None else "signal"
    return _finding(
        item,
        "always-matches",
        f"{effect} rule matches every request its policy applies to: its condition is never false",
    )


def _covers(outer: Target, inner: Target) -> bool:
    """Whether every request ``inner`` targets is targeted by ``outer`` too."""

    def within(big: frozenset[str] | None, small: frozenset[str] | None) -> bool:
        return big is None or (small is not None and small <= big)

    return within(outer.resources, inner.resources) and within(outer.actions, inner.actions)


def _shadowed(items: list[_Item], live: list[_Item], solver: _Solver) -> Iterator[Finding]:
    stronger = [i for i in items if i.effect in (Effect.DENY, Effect.STEP_UP) and not i.report_only]
    for allow in live:
        if allow.effect is not Effect.ALLOW or allow.report_only:
            continue
        candidates = {
            s.ref: s.cond.f for s in stronger if _covers(s.policy.target, allow.policy.target)
        }
        if not candidates:
            continue
        names = _shadowers(allow, candidates, solver)
        if names is None:
            continue
        by_ref = {i.ref: i for i in stronger}
        both = [allow.cond.t, *(by_ref[n].cond.t for n in names)]
        read = allow.read.union(*(by_ref[n].read for n in names))
        model = solver.model(z3.And(*both), *_plain(solver, read)) if len(names) == 1 else None
        example = _example(solver, model, read)
        if example is not None and names:
            example = _verified(example, [allow, by_ref[names[0]]])
        whom = names[0] if len(names) == 1 else "one of " + ", ".join(names)
        yield _finding(
            allow,
            "shadowed-allow",
            f"allow rule never decides a request: whenever it matches, {whom} matches"
            " too and outranks it",
            related=tuple(names),
            example=example,
        )


def _shadowers(allow: _Item, candidates: dict[str, Any], solver: _Solver) -> list[str] | None:
    """The fewest deny/step-up rules found that match whenever ``allow`` does: one if one
    does, else a set from z3's unsat core, each member needed."""
    if not solver.unsat(allow.cond.t, *(f for f in candidates.values())):
        return None  # (all of them together do not: no query for each)
    for name, f in candidates.items():
        if solver.unsat(allow.cond.t, f):
            return [name]
    names = solver.core(allow.cond.t, candidates)
    if names is None:
        return None
    for name in list(names):
        rest = [n for n in names if n != name]
        if rest and solver.unsat(allow.cond.t, *(candidates[n] for n in rest)):
            names = rest
    return sorted(names)


def _duplicates(live: list[_Item], solver: _Solver) -> Iterator[Finding]:
    groups: dict[tuple[bool, Target], list[_Item]] = {}
    for item in live:
        if item.when is not None:
            groups.setdefault((item.effect is None, item.policy.target), []).append(item)
    for group in groups.values():
        for index, later in enumerate(group):
            for earlier in group[:index]:
                if _paths_of(earlier) != _paths_of(later):
                    continue  # (reading different attributes: not worth a query)
                a, b = earlier.cond, later.cond
                differ = z3.Or(z3.Xor(a.t, b.t), z3.Xor(a.f, b.f))
                if solver.unsat(differ):
                    yield _finding(
                        later,
                        "duplicate-condition",
                        f"condition is equivalent to that of {earlier.ref} ({_place(earlier)})",
                        related=(earlier.ref,),
                    )
                    break


def _plain(solver: _Solver, read: frozenset[Any]) -> list[Any]:
    """Every path read is absent, a map or a number, string or bool: an example the
    encoding describes exactly (a list or null would be read through unknowns)."""
    paths = solver.encoder.paths()
    read_paths = [p for p in read if isinstance(p, tuple) and p in paths]
    parents = {p[:-1] for p in read_paths}
    out = []
    for parts in read_paths:
        v = paths[parts]
        kinds = ["is_int", "is_double", "is_string", "is_bool"]
        if parts in parents:
            kinds.append("map")
        out.append(z3.Implies(v["has"], z3.Or(*(v[k] for k in kinds))))
    return out


def _paths_of(item: _Item) -> frozenset[Any]:
    return frozenset(p for p in item.read if isinstance(p, tuple))


def _place(item: _Item) -> str:
    file, line, column = item.position
    return f"{file}:{line}:{column}"


def _example(solver: _Solver, model: Any | None, read: frozenset[Any]) -> dict[str, Any] | None:
    """The attribute values ``model`` gives, as nested request data (what was read)."""
    if model is None:
        return None
    out: dict[str, Any] = {}
    paths = solver.encoder.paths()
    for parts in sorted(paths, key=lambda p: (len(p), p)):
        v = paths[parts]
        if parts not in read or not _true(model, v["has"]) or len(parts) < 2:
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
    return dict(sorted(out.items(), key=lambda kv: _order(kv[0])))


def _verified(example: dict[str, Any], items: list[_Item]) -> dict[str, Any] | None:
    """``example`` if the engine's own conditions are all true on a request holding it
    (defaults elsewhere), else None: an example is shown only once it is checked."""
    backend = default_backend()
    variables: dict[str, Any] = {
        "subject": {"type": "user", "id": "someone", "properties": {}},
        "action": {"name": "read", "properties": {}},
        "resource": {"type": "record", "id": None, "properties": {}},
        "device": {},
        "context": {},
        "behavior": {},
        "risk": {"score": 0, "signals": []},
    }
    _merge(variables, example)
    variables["data"] = {}
    variables["now"] = datetime.datetime.now(datetime.UTC)
    bindings = backend.bind(variables)
    for item in items:
        if item.when is None:
            continue
        try:
            if backend.compile(item.when.text)(bindings) is not True:
                return None
        except ZeroTrustError:
            return None
    return example


def _merge(into: dict[str, Any], values: dict[str, Any]) -> None:
    for key, value in values.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def _order(name: str) -> int:
    return _VARIABLE_ORDER.index(name) if name in _VARIABLE_ORDER else len(_VARIABLE_ORDER)


def _put(out: dict[str, Any], parts: tuple[str, ...], value: Any) -> None:
    node = out
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    if not isinstance(node.get(parts[-1]), dict) or value != {}:
        node[parts[-1]] = value


def _true(model: Any, formula: Any) -> bool:
    return bool(z3.is_true(model.eval(formula, model_completion=True)))
