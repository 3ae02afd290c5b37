"""Policy test suites: ``*_test.yaml`` files of requests and the decisions they must get.

Used by ``zerotrust test`` and usable from a project's own pytest (``run_tests``).
A suite that is itself malformed raises :class:`PolicyError` with positions, like a policy.
"""

from __future__ import annotations

import datetime
import json
import re
import xml.etree.ElementTree as ET
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

__all__ = [
    "CaseResult",
    "StaticBehavior",
    "SuiteReport",
    "run_suite_file",
    "run_tests",
    "to_json",
    "to_junit",
]

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
        """Every applicable rule and signal and its outcome (``zerotrust test -v``)."""
        if self.decision is None or not self.decision.trace:
            return ()
        lines = []
        for entry in self.decision.trace:
            what = f"{entry.kind} {entry.rule}" + (f" ({entry.effect})" if entry.effect else "")
            note = f": {entry.message}" if entry.message else ""
            lines.append(f"{what}: {entry.outcome}{note}")
        return tuple(lines)


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
    keeps the cases whose name it matches (``re.search``).
    """
    backend = backend or default_backend()
    root = Path(path)
    if root.is_dir():
        policies = load_path(root, backend)
        suites = sorted(p for p in root.rglob("*") if p.is_file() and is_test_file(p))
    else:
        policies = load_path(root.parent, backend)
        suites = [root] if is_test_file(root) else _suites_of(root)
    pattern = re.compile(select) if isinstance(select, str) else select
    results: list[CaseResult] = []
    problems: list[Diagnostic] = []
    for suite in suites:
        try:
            results.extend(run_suite_file(suite, policies, backend, select=pattern))
        except PolicyError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise PolicyError(problems)
    return SuiteReport(tuple(results))


def _suites_of(policy_file: Path) -> list[Path]:
    stem = policy_file.name.rsplit(".", 1)[0]
    found = (policy_file.with_name(f"{stem}_test{suffix}") for suffix in (".yaml", ".yml"))
    return [p for p in found if p.is_file()]


def run_suite_file(
    path: Path,
    policies: PolicySet,
    backend: Backend,
    *,
    select: re.Pattern[str] | None = None,
) -> list[CaseResult]:
    """Run one suite file (the cases ``select`` matches, or all) against a loaded set."""
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
            if select is not None and not select.search(case.name):
                continue
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


def _case_dict(result: CaseResult) -> dict[str, Any]:
    return {
        "file": result.file,
        "line": result.line,
        "suite": result.suite,
        "name": result.name,
        "passed": result.passed,
        "expected": dict(result.expected),
        "got": result.got(),
        "failures": list(result.failures),
        "explanation": list(result.explanation()),
    }


def to_json(report: SuiteReport) -> str:
    """The report as one JSON object: the counts and every case."""
    body = {
        "passed": report.passed,
        "failed": report.failed,
        "cases": [_case_dict(r) for r in report.results],
    }
    return json.dumps(body, indent=2, default=str)


# Characters XML 1.0 cannot carry, even escaped: a case name or a request value holding
# one would make the whole report unreadable to the CI system.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _xml(text: str) -> str:
    return _NOT_XML.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def to_junit(report: SuiteReport) -> str:
    """The report as JUnit XML, the format CI systems read: one ``testsuite`` per suite
    file, one ``testcase`` per case (``classname`` the file), a ``failure`` for each
    failing case with its explanation."""
    root = ET.Element(
        "testsuites",
        name="zerotrust",
        tests=str(len(report.results)),
        failures=str(report.failed),
        errors="0",
    )
    by_file: dict[str, list[CaseResult]] = {}
    for result in report.results:
        by_file.setdefault(result.file, []).append(result)
    for file, results in by_file.items():
        failed = sum(1 for r in results if not r.passed)
        suite = ET.SubElement(
            root,
            "testsuite",
            name=_xml(file),
            tests=str(len(results)),
            failures=str(failed),
            errors="0",
            skipped="0",
        )
        for result in results:
            case = ET.SubElement(
                suite,
                "testcase",
                name=_xml(result.name),
                classname=_xml(file),
                file=_xml(file),
                line=str(result.line),
            )
            if not result.passed:
                failure = ET.SubElement(
                    case,
                    "failure",
                    message=_xml("; ".join(result.failures)),
                    type="PolicyTestFailure",
                )
                failure.text = _xml("\n".join(result.explanation()))
    ET.indent(root)
    # ASCII with character references: the same document on any terminal or pipe encoding.
    document: bytes = ET.tostring(root, encoding="us-ascii", xml_declaration=True)
    return document.decode("ascii") + "\n"
