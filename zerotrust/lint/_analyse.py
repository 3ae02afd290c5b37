"""The analyses: each finding is a proof (an unsat answer), never a guess.

A query that z3 answers ``unknown`` (a timeout) gives no finding. Rules are judged as the
engine combines them: any matching deny wins, then any step-up, then any allow; an allow
that errors does not match, a deny or step-up that errors does (fail closed); a signal
that errors counts. Report-only rules never change a decision, so they never shadow and
are never "always matching". Most questions about pairs of rules are settled first by
sample requests run through the engine's own conditions (``_samples``): a sample can only
show that the answer is no, so it removes queries, never findings.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import attrs
import z3  # type: ignore[import-untyped, import-not-found, unused-ignore]

from zerotrust.cel._compiler import FUNCTIONS
from zerotrust.cel._syntax import parse
from zerotrust.decision import Effect
from zerotrust.lint._encode import Encoder
from zerotrust.lint._model import Finding, LintOptions, LintReport
from zerotrust.lint._samples import (
    FALSE,
    TRUE,
    UNSURE,
    Samples,
    extremes,
    literals,
    request_of,
    variants,
)
from zerotrust.lint._solver import Solver
from zerotrust.lint._values import Tri
from zerotrust.policy.model import CelSource, PolicySpec, RuleSpec, Target

__all__ = ["lint_specs"]

_VARIABLE_ORDER = ("subject", "action", "resource", "device", "context")
#: Variables the engine computes: shown beside an example, never in it.
_COMPUTED = ("risk", "behavior")
#: How many members' samples may try to split a class of rules before its pairs go to
#: the solver (rules that are equivalent indeed are split by none: bound that cost).
_TRIED = 8


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
    #: The int, double and string literals of the condition (for sample requests).
    literals: tuple[Any, ...] = ()

    @property
    def position(self) -> tuple[str, int, int]:
        if self.when is not None:
            return self.when.file, self.when.line, self.when.column
        return self.policy.file, self.line, 1


def lint_specs(
    specs: Sequence[PolicySpec], options: LintOptions | None = None, *, samples: bool = True
) -> LintReport:
    """Every finding for the policies ``specs`` (already validated), in file order.

    ``samples=False`` asks the solver every question (the same findings, slower: for
    tests that check the samples remove queries, never findings)."""
    started = time.monotonic()
    options = options or LintOptions()
    encoder = Encoder()
    items = list(_items(specs, encoder))
    solver = Solver(encoder, options, started)
    witnesses = _Witnesses(solver, enabled=samples)
    findings: list[Finding] = []
    live: list[_Item] = []
    for item in items:
        if item.when is None:
            answer, model = z3.sat, None
        else:
            answer, model = solver.check((item.cond.t,), model=samples)
        if answer == z3.sat:
            live.append(item)
            witnesses.found(item, model)
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
    findings.extend(_shadowed(items, live, solver, witnesses))
    findings.extend(_duplicates(live, solver, witnesses))
    findings.sort(key=lambda f: (f.file, f.line, f.column, f.kind))
    return LintReport(tuple(findings), solver.undecided, solver.out_of_time)


class _Witnesses:
    """Sample requests for each rule: the solver's model of its condition being true and
    variants of it at the values the condition compares with (see ``_samples``)."""

    def __init__(self, solver: Solver, *, enabled: bool = True) -> None:
        self.solver = solver
        self.enabled = enabled
        self.samples = Samples()
        self._base: dict[int, dict[str, Any]] = {}
        self._of: dict[int, list[int]] = {}
        self._more: dict[int, list[int]] = {}

    def found(self, item: _Item, model: Any | None) -> None:
        if not self.enabled:
            return
        base = {} if model is None else request_of(model, self.solver.encoder.paths())
        if base is not None:
            self._base[id(item)] = base

    def of(self, item: _Item) -> list[int]:
        """The samples made from ``item``'s own model (none if it has none)."""
        if id(item) not in self._of:
            base = self._base.get(id(item))
            self._of[id(item)] = self._around(item, base)
        return self._of[id(item)]

    def more(self, item: _Item) -> list[int]:
        """Samples from the solver's models of ``item``'s condition being false and
        erroring (asked only for rules the first samples did not tell apart)."""
        if not self.enabled or item.when is None:
            return []
        if id(item) not in self._more:
            made: list[int] = []
            for formula in (item.cond.f, item.cond.error):
                answer, model = self.solver.check((formula,), model=True, aside=True)
                if answer == z3.sat:
                    made += self._around(item, request_of(model, self.solver.encoder.paths()))
            self._more[id(item)] = made
        return self._more[id(item)]

    def _around(self, item: _Item, base: dict[str, Any] | None) -> list[int]:
        if base is None:
            return []
        return self._add([base, *variants(base, list(item.literals), item.read)])

    def past(self, item: _Item, values: list[Any]) -> list[int]:
        """Samples from ``item``'s model with its numbers past every one of ``values``."""
        base = self._base.get(id(item))
        return [] if base is None else self._add(extremes(base, values, item.read))

    def _add(self, made: Any) -> list[int]:
        return [i for i in (self.samples.add(s) for s in made) if i is not None]

    def outcome(self, item: _Item, index: int) -> str:
        if item.when is None:
            return TRUE
        return self.samples.outcome(item.when.compiled_text, index)


def _items(specs: Sequence[PolicySpec], encoder: Encoder) -> Iterator[_Item]:
    for spec in specs:
        for signal in spec.signals:
            cond, values = _encode(signal.when, encoder, risk_known=False)
            ref = f"{spec.name}/{signal.name}"
            read = frozenset(encoder.read)
            yield _Item(ref, spec, None, False, signal.when, signal.line, cond, read, values)
        for rule in spec.rules:
            cond, values = _encode(rule.when, encoder, risk_known=True)
            yield _item(spec, rule, cond, frozenset(encoder.read), values)


def _item(
    spec: PolicySpec, rule: RuleSpec, cond: Tri, read: frozenset[Any], values: tuple[Any, ...]
) -> _Item:
    ref = f"{spec.name}/{rule.id}"
    return _Item(ref, spec, rule.effect, rule.report_only, rule.when, rule.line, cond, read, values)


def _encode(
    when: CelSource | None, encoder: Encoder, *, risk_known: bool
) -> tuple[Tri, tuple[Any, ...]]:
    if when is None:
        encoder.read = set()
        return Tri(z3.BoolVal(True), z3.BoolVal(False)), ()
    tree = parse(when.compiled_text, FUNCTIONS).tree
    return encoder.condition(tree, risk_known=risk_known), tuple(literals(tree))


def _finding(item: _Item, kind: str, message: str, **more: Any) -> Finding:
    file, line, column = item.position
    return Finding(kind, file, line, column, item.ref, message, **more)


def _dead(item: _Item, solver: Solver) -> Finding:
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
    """Deny and step-up rules with a ``when`` (none says "always" on purpose); not
    report-only ones, which never decide, so matching everything is no mistake."""
    return (
        item.when is not None
        and item.effect in (Effect.DENY, Effect.STEP_UP)
        and not item.report_only
    )


def _always(item: _Item, solver: Solver) -> Finding | None:
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


def _shadowed(
    items: list[_Item], live: list[_Item], solver: Solver, witnesses: _Witnesses
) -> Iterator[Finding]:
    stronger = [i for i in items if i.effect in (Effect.DENY, Effect.STEP_UP) and not i.report_only]
    by_ref = {i.ref: i for i in stronger}
    for allow in live:
        if allow.effect is not Effect.ALLOW or allow.report_only:
            continue
        rivals = [s for s in stronger if _covers(s.policy.target, allow.policy.target)]
        if not rivals:
            continue
        cleared = _cleared(allow, rivals, witnesses)
        if cleared is None:
            continue  # a sample where the allow matches and none of them does
        candidates = {s.ref: s.cond.f for s in rivals}
        names = _shadowers(allow, candidates, cleared, solver)
        if names is None:
            continue
        both = [allow.cond.t, *(by_ref[n].cond.t for n in names)]
        read = allow.read.union(*(by_ref[n].read for n in names))
        model = solver.model(z3.And(*both), *_plain(solver, read)) if len(names) == 1 else None
        example = None if model is None else request_of(model, solver.encoder.paths(), read)
        if example is not None and names:
            example = _verified(example, [allow, by_ref[names[0]]], witnesses)
        request, computed = _split(example)
        whom = names[0] if len(names) == 1 else "one of " + ", ".join(names)
        yield _finding(
            allow,
            "shadowed-allow",
            f"allow rule never decides a request: whenever it matches, {whom} matches"
            " too and outranks it",
            related=tuple(names),
            example=request,
            example_with=computed,
        )


def _cleared(allow: _Item, rivals: list[_Item], witnesses: _Witnesses) -> set[str] | None:
    """The rivals a sample shows do not match on some request the allow matches (so none
    of them shadows it alone); None if on one such sample none of them matches."""
    cleared: set[str] = set()
    values = [v for r in (allow, *rivals) for v in r.literals]
    for index in [*witnesses.of(allow), *witnesses.past(allow, values)]:
        if witnesses.outcome(allow, index) != TRUE:
            continue
        quiet = {r.ref for r in rivals if witnesses.outcome(r, index) == FALSE}
        if len(quiet) == len(rivals):
            return None
        cleared |= quiet
    return cleared


def _shadowers(
    allow: _Item, candidates: dict[str, Any], cleared: set[str], solver: Solver
) -> list[str] | None:
    """The fewest deny/step-up rules found that match whenever ``allow`` does: one if one
    does, else a set from z3's unsat core, each member needed. ``cleared``: rules a
    sample has shown do not do so alone (not asked about one by one)."""
    if not solver.unsat(allow.cond.t, *(f for f in candidates.values())):
        return None  # (all of them together do not: no query for each)
    for name, f in candidates.items():
        if name not in cleared and solver.unsat(allow.cond.t, f):
            return [name]
    names = solver.core(allow.cond.t, candidates)
    if names is None:
        return None
    for name in list(names):
        rest = [n for n in names if n != name]
        if rest and solver.unsat(allow.cond.t, *(candidates[n] for n in rest)):
            names = rest
    return sorted(names)


def _duplicates(live: list[_Item], solver: Solver, witnesses: _Witnesses) -> Iterator[Finding]:
    groups: dict[tuple[bool, Target, frozenset[Any]], list[_Item]] = {}
    for item in live:
        if item.when is not None:  # (reading different attributes: not worth a query)
            key = (item.effect is None, item.policy.target, _paths_of(item))
            groups.setdefault(key, []).append(item)
    for group in groups.values():
        same = {id(i): n for n, cls in enumerate(_classes(group, witnesses)) for i in cls}
        for index, later in enumerate(group):
            for earlier in group[:index]:
                if same.get(id(earlier), -1) != same.get(id(later), -2):
                    continue  # a sample request tells them apart
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


def _classes(group: list[_Item], witnesses: _Witnesses) -> list[list[_Item]]:
    """``group`` split into classes no sample tells apart (each in group order): the
    samples of each class's own members, until none splits it further."""
    pending, final = [group], []
    while pending:
        cls = pending.pop()
        if len(cls) < 2:
            continue
        parts = _split_class(cls, witnesses)
        if parts is None:
            final.append(cls)
        else:
            pending.extend(parts)
    return final


def _split_class(cls: list[_Item], witnesses: _Witnesses) -> list[list[_Item]] | None:
    """``cls`` split by the outcomes on one member's samples at a time (a sample an
    outcome is unsure on is left out), or None if no member's samples split it."""
    for more in (False, True):
        for member in cls[:_TRIED]:
            indices = witnesses.more(member) if more else witnesses.of(member)
            table = [[witnesses.outcome(item, i) for i in indices] for item in cls]
            usable = [n for n in range(len(indices)) if all(row[n] != UNSURE for row in table)]
            parts: dict[tuple[str, ...], list[_Item]] = {}
            for item, row in zip(cls, table, strict=True):
                parts.setdefault(tuple(row[n] for n in usable), []).append(item)
            if len(parts) > 1:
                return list(parts.values())
    return None


def _plain(solver: Solver, read: frozenset[Any]) -> list[Any]:
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


def _verified(
    example: dict[str, Any], items: list[_Item], witnesses: _Witnesses
) -> dict[str, Any] | None:
    """``example`` if the engine's own conditions are all true on a request holding it
    (defaults elsewhere), else None: an example is shown only once it is checked."""
    index = witnesses.samples.add(example)
    if index is None:
        return None
    if all(witnesses.outcome(item, index) == TRUE for item in items):
        return example
    return None


def _split(example: dict[str, Any] | None) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The request's part of ``example`` (in variable order) and the computed part
    (``risk``, ``behavior``: a request cannot carry them), each None if empty."""
    if example is None:
        return None, None
    request = {k: example[k] for k in _VARIABLE_ORDER if k in example}
    computed = {k: example[k] for k in _COMPUTED if k in example}
    return request or None, computed or None
