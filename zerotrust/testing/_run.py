"""Running suites: each case's request decided by a PDP on the loaded set, then compared."""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from zerotrust.cel import Backend, default_backend
from zerotrust.decision import Decision
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.errors import Diagnostic, PolicyError, RequestError
from zerotrust.policy.loader import is_test_file, load_path
from zerotrust.policy.policy_set import PolicySet
from zerotrust.request import AccessRequest
from zerotrust.testing._suite import Case, Known, read_suite

__all__ = [
    "CaseResult",
    "StaticBehavior",
    "SuiteCheck",
    "SuiteReport",
    "check_suites",
    "run_suite_file",
    "run_tests",
    "suite_files",
]


@attrs.frozen
class CaseResult:
    """One case: passed, or the list of ways the decision differed from the expectation."""

    file: str
    suite: str
    name: str
    line: int
    failures: tuple[str, ...]
    decision: Decision | None = None
    expected: Mapping[str, Any] = attrs.field(factory=dict, hash=False)

    @property
    def passed(self) -> bool:
        return not self.failures

    def got(self) -> dict[str, Any] | None:
        """What the decision was, in the terms of ``expect`` (plus its errors)."""
        d = self.decision
        if d is None:
            return None
        return {
            "effect": d.effect.value,
            "rules": sorted(r.rule for r in d.reasons),
            "risk": d.risk.score,
            "signals": sorted(d.risk.signals),
            "step_up": d.step_up.to_dict() if d.step_up else None,
            "obligations": sorted(o.type for o in d.obligations),
            "report_only": sorted(r.rule for r in d.report_only if r.matched),
            "errors": [{"rule": e.rule, "kind": e.kind, "message": e.message} for e in d.errors],
        }

    def explanation(self) -> tuple[str, ...]:
        """What differed, then what happened: a failure is only useful with the second
        part (a typo'd attribute shows up as an evaluation error, not as a wrong effect)."""
        lines = list(self.failures)
        got = self.got()
        if got is None:
            return tuple(lines)
        lines.append(
            f"got: effect {got['effect']}, rules {', '.join(got['rules'])}, risk {got['risk']}"
            + (f" (signals {', '.join(got['signals'])})" if got["signals"] else "")
        )
        if got["report_only"]:
            lines.append(f"report-only matched: {', '.join(got['report_only'])}")
        for error in got["errors"]:
            lines.append(f"error in {error['kind']} {error['rule']}: {error['message']}")
        return tuple(lines)

    def trace(self) -> tuple[str, ...]:
        """Every applicable rule and signal, its outcome and, indented below, the values
        its condition read (``zerotrust test -v``)."""
        if self.decision is None or not self.decision.trace:
            return ()
        lines = []
        for entry in self.decision.trace:
            what = f"{entry.kind} {entry.rule}" + (f" ({entry.effect})" if entry.effect else "")
            note = f": {entry.message}" if entry.message else ""
            lines.append(f"{what}: {entry.outcome}{note}")
            lines.extend(f"    {read}" for read in (*entry.reads, *entry.variables))
        return tuple(lines)


@attrs.frozen
class SuiteReport:
    """The cases run, and the policy set they ran against (for coverage)."""

    results: tuple[CaseResult, ...]
    policies: PolicySet | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def passed(self) -> int:
        return sum(1 for r in self.results if r.passed)

    @property
    def failed(self) -> int:
        return sum(1 for r in self.results if not r.passed)

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def summary(self) -> str:
        return f"{self.passed} passed, {self.failed} failed"


class StaticBehavior:
    """Fixed behaviour features (a test case's ``behavior:``); records nothing.

    Use it to test policies on given features without a real store.
    """

    def __init__(self, features: Mapping[str, Any]) -> None:
        self._features = dict(features)

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        return self._features

    def record(self, request: AccessRequest, decision: Decision) -> None:
        return None


def run_tests(
    path: str | Path,
    *,
    backend: Backend | None = None,
    select: str | re.Pattern[str] | None = None,
) -> SuiteReport:
    """Load the policies under ``path`` and run every ``*_test.yaml`` suite beside them.

    ``path`` may be one file: the whole set of its directory is loaded still (its rules
    and signals depend on the other policies and the data files), and only that file's
    suite runs (``x.yaml`` -> ``x_test.yaml``; a suite file runs itself). ``select``
    keeps the cases whose name it matches (``re.search``). Raises :class:`PolicyError`
    listing every problem of every suite when any is malformed.
    """
    backend = backend or default_backend()
    root = Path(path)
    _must_exist(root)
    try:
        policies = load_path(root if root.is_dir() else root.parent, backend)
    except PolicyError as exc:  # the suites' own problems too, all at once
        shape = [p for suite in suite_files(root) for p in read_suite(suite, None)[1]]
        raise PolicyError([*exc.diagnostics, *shape]) from None
    pattern = re.compile(select) if isinstance(select, str) else select
    known = Known.of(policies)
    results: list[CaseResult] = []
    problems: list[Diagnostic] = []
    for suite in suite_files(root):
        cases, found = read_suite(suite, known)
        problems.extend(found)
        if not found:
            results.extend(_run_cases(cases, str(suite), policies, backend, pattern))
    if problems:
        raise PolicyError(problems)
    return SuiteReport(tuple(results), policies)


def suite_files(path: str | Path) -> list[Path]:
    """The suites ``path`` names: every one under a directory, a suite file itself, or
    the suite of a policy file (``x.yaml`` -> ``x_test.yaml``, if there is one)."""
    root = Path(path)
    if root.is_dir():
        return sorted(p for p in root.rglob("*") if p.is_file() and is_test_file(p))
    if is_test_file(root):
        return [root]
    stem = root.name.rsplit(".", 1)[0]
    found = (root.with_name(f"{stem}_test{suffix}") for suffix in (".yaml", ".yml"))
    return [p for p in found if p.is_file()]


@attrs.frozen
class SuiteCheck:
    """What ``zerotrust validate`` learns of the suites: how many, and their problems."""

    suites: int
    cases: int
    problems: tuple[Diagnostic, ...]


def check_suites(
    path: str | Path, policies: PolicySet | None, *, backend: Backend | None = None
) -> SuiteCheck:
    """Check the suites ``path`` names without running them.

    References (rule refs, signal names) are checked against ``policies``: the set
    loaded from ``path`` when it is a directory. For a file, the set of its directory
    is loaded here, as ``zerotrust test`` would. None (the set did not load): the
    suites are checked for their shape only, so their problems are still reported.
    """
    root = Path(path)
    if not root.exists():
        return SuiteCheck(0, 0, (_missing(root),))
    if not root.is_dir():
        try:
            policies = load_path(root.parent, backend or default_backend())
        except PolicyError:
            policies = None
    known = Known.of(policies) if policies is not None else None
    suites = suite_files(root)
    cases = 0
    problems: list[Diagnostic] = []
    for suite in suites:
        found, suite_problems = read_suite(suite, known)
        cases += len(found)
        problems.extend(suite_problems)
    return SuiteCheck(len(suites), cases, tuple(problems))


def _must_exist(root: Path) -> None:
    """A path that is not there is refused by name: loading its parent directory
    instead would search a set the user never named (a typo in ``x/typo`` loads ``x``)."""
    if not root.exists():
        raise PolicyError([_missing(root)])


def _missing(root: Path) -> Diagnostic:
    return Diagnostic(str(root), 0, 0, "no such file or directory")


def run_suite_file(
    path: Path,
    policies: PolicySet,
    backend: Backend,
    *,
    select: re.Pattern[str] | None = None,
) -> list[CaseResult]:
    """Run one suite file (the cases ``select`` matches, or all) against a loaded set.

    Raises :class:`PolicyError` listing every problem of the file when it is malformed.
    """
    cases, problems = read_suite(path, Known.of(policies))
    if problems:
        raise PolicyError(problems)
    return _run_cases(cases, str(path), policies, backend, select)


def _run_cases(
    cases: list[Case],
    file: str,
    policies: PolicySet,
    backend: Backend,
    select: re.Pattern[str] | None,
) -> list[CaseResult]:
    return [
        _run_case(case, file, policies, backend)
        for case in cases
        if select is None or select.search(case.name)
    ]


def _run_case(case: Case, file: str, policies: PolicySet, backend: Backend) -> CaseResult:
    now = case.now
    pdp = PolicyDecisionPoint(
        policies,
        clock=(lambda: now) if now is not None else None,
        behavior=StaticBehavior(case.behavior),
        backend=backend,
    )
    try:
        decision = pdp.evaluate(case.request, explain=True)
    except RequestError as exc:
        failure = (f"invalid request: {exc}",)
        return CaseResult(file, case.suite, case.name, case.line, failure, None, case.expect)
    failures = tuple(_compare(case.expect, decision))
    return CaseResult(file, case.suite, case.name, case.line, failures, decision, case.expect)


def _compare(expect: Mapping[str, Any], decision: Decision) -> list[str]:
    failures: list[str] = []

    def check(key: str, actual: Any, wanted: Any) -> None:
        if actual != wanted:
            failures.append(f"{key}: expected {wanted!r}, got {actual!r}")

    check("effect", decision.effect.value, expect["effect"])
    if "rules" in expect:
        check("rules", sorted(r.rule for r in decision.reasons), sorted(expect["rules"] or []))
    if "risk" in expect:
        check("risk", decision.risk.score, expect["risk"])
    if "signals" in expect:
        check("signals", sorted(decision.risk.signals), sorted(expect["signals"] or []))
    if "step_up" in expect:
        actual = decision.step_up.to_dict() if decision.step_up else None
        wanted = expect["step_up"]
        if isinstance(wanted, Mapping):
            wanted = {"acr_values": [], "max_age": None, **wanted}
        check("step_up", actual, wanted)
    if "obligations" in expect:
        check(
            "obligations",
            sorted(o.type for o in decision.obligations),
            sorted(expect["obligations"] or []),
        )
    if "report_only" in expect:
        matched = sorted(r.rule for r in decision.report_only if r.matched)
        check("report_only", matched, sorted(expect["report_only"] or []))
    return failures
