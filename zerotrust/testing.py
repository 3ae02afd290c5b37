"""Policy test suites: ``*_test.yaml`` files of requests and the decisions they must get.

Used by ``zerotrust test`` and usable from a project's own pytest (``run_tests``).
A suite that is itself malformed raises :class:`PolicyError` with positions, like a policy.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from zerotrust.cel import Backend, default_backend
from zerotrust.decision import Decision, Effect
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.errors import Diagnostic, PolicyError, RequestError
from zerotrust.policy.compile import PolicySet
from zerotrust.policy.loader import is_test_file, load_path
from zerotrust.policy.located import LNode, YamlProblem, load_documents
from zerotrust.request import AccessRequest

__all__ = ["CaseResult", "StaticBehavior", "SuiteReport", "run_suite_file", "run_tests"]

_SUITE_KEYS = ("suite", "defaults", "cases")
_DEFAULT_KEYS = ("now", "request", "behavior")
_CASE_KEYS = ("name", "now", "request", "behavior", "expect", "description")
_EXPECT_KEYS = ("effect", "rules", "risk", "signals", "step_up", "obligations", "report_only")


@attrs.frozen
class CaseResult:
    """One case: passed, or the list of ways the decision differed from the expectation."""

    file: str
    suite: str
    name: str
    line: int
    failures: tuple[str, ...]
    decision: Decision | None = None

    @property
    def passed(self) -> bool:
        return not self.failures


@attrs.frozen
class SuiteReport:
    results: tuple[CaseResult, ...]

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


def run_tests(path: str | Path, *, backend: Backend | None = None) -> SuiteReport:
    """Load the policies under ``path`` and run every ``*_test.yaml`` suite beside them."""
    backend = backend or default_backend()
    root = Path(path)
    policies = load_path(root, backend)
    if root.is_dir():
        suites = sorted(p for p in root.rglob("*") if p.is_file() and is_test_file(p))
    else:
        suites = sorted(p for p in root.parent.glob("*") if p.is_file() and is_test_file(p))
    results: list[CaseResult] = []
    problems: list[Diagnostic] = []
    for suite in suites:
        try:
            results.extend(run_suite_file(suite, policies, backend))
        except PolicyError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise PolicyError(problems)
    return SuiteReport(tuple(results))


def run_suite_file(path: Path, policies: PolicySet, backend: Backend) -> list[CaseResult]:
    """Run one suite file against a loaded set."""
    name = str(path)
    try:
        documents = load_documents(path.read_text(encoding="utf-8"))
    except YamlProblem as exc:
        raise PolicyError([Diagnostic(name, exc.line, exc.column, exc.message)]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError([Diagnostic(name, 0, 0, f"cannot read test suite: {exc}")]) from None
    results: list[CaseResult] = []
    problems: list[Diagnostic] = []
    for doc in documents:
        if doc.value is None:
            continue
        cases = _parse_suite(doc, name, problems)
        for case in cases:
            results.append(_run_case(case, name, policies, backend))
    if problems:
        raise PolicyError(problems)
    return results


@attrs.frozen
class _Case:
    suite: str
    name: str
    line: int
    now: datetime.datetime | None
    request: Mapping[str, Any]
    behavior: Mapping[str, Any]
    expect: Mapping[str, Any]


def _parse_suite(doc: LNode, file: str, problems: list[Diagnostic]) -> list[_Case]:
    def bad(node: LNode, message: str) -> None:
        problems.append(Diagnostic(file, node.line, node.column, message))

    if not isinstance(doc.value, dict):
        bad(doc, "a test suite must be a mapping with a 'cases' list")
        return []
    _check_keys(doc, _SUITE_KEYS, "test suite", bad)
    suite_node = doc.value.get("suite")
    suite = str(suite_node.value) if suite_node is not None else Path(file).stem
    defaults_node = doc.value.get("defaults")
    defaults: dict[str, Any] = {}
    if defaults_node is not None:
        if isinstance(defaults_node.value, dict):
            _check_keys(defaults_node, _DEFAULT_KEYS, "defaults", bad)
            defaults = defaults_node.plain()
        else:
            bad(defaults_node, "defaults must be a mapping")
    cases_node = doc.value.get("cases")
    if cases_node is None or not isinstance(cases_node.value, list) or not cases_node.value:
        bad(cases_node or doc, "a test suite needs a non-empty 'cases' list")
        return []
    cases: list[_Case] = []
    for index, node in enumerate(cases_node.value, 1):
        if not isinstance(node.value, dict):
            bad(node, "each case must be a mapping")
            continue
        _check_keys(node, _CASE_KEYS, "test case", bad)
        merged = _deep_merge(defaults, node.plain())
        name = str(merged.get("name") or f"case {index}")
        expect = merged.get("expect")
        if not isinstance(expect, dict) or "effect" not in expect:
            bad(node, f"case {name!r}: expect.effect is required")
            continue
        if set(expect) - set(_EXPECT_KEYS):
            unknown = sorted(set(expect) - set(_EXPECT_KEYS))
            bad(node, f"case {name!r}: unknown expect key(s) {', '.join(unknown)}")
            continue
        if expect["effect"] not in {e.value for e in Effect}:
            bad(node, f"case {name!r}: expect.effect must be allow, deny or step_up")
            continue
        now = None
        if merged.get("now") is not None:
            now = _parse_now(merged["now"])
            if now is None:
                bad(node, f"case {name!r}: now must be an ISO 8601 time with a timezone")
                continue
        request = merged.get("request")
        behavior = merged.get("behavior") or {}
        if not isinstance(request, dict) or not isinstance(behavior, dict):
            bad(node, f"case {name!r}: request (and behavior, if given) must be mappings")
            continue
        cases.append(_Case(suite, name, node.line, now, request, behavior, expect))
    return cases


def _check_keys(node: LNode, allowed: tuple[str, ...], what: str, bad: Any) -> None:
    for key, key_node in (node.keys or {}).items():
        if key not in allowed:
            bad(key_node, f"unknown key {key!r} in {what} (allowed: {', '.join(allowed)})")


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _parse_now(value: Any) -> datetime.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _run_case(case: _Case, file: str, policies: PolicySet, backend: Backend) -> CaseResult:
    now = case.now
    pdp = PolicyDecisionPoint(
        policies,
        clock=(lambda: now) if now is not None else None,
        behavior=StaticBehavior(case.behavior),
        backend=backend,
    )
    try:
        decision = pdp.evaluate(case.request)
    except RequestError as exc:
        return CaseResult(file, case.suite, case.name, case.line, (f"invalid request: {exc}",))
    return CaseResult(
        file, case.suite, case.name, case.line, tuple(_compare(case.expect, decision)), decision
    )


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
