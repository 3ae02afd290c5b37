from __future__ import annotations

from pathlib import Path

import pytest

from zerotrust import PolicyError
from zerotrust.testing import run_tests

POLICY = """
policy: p
signals:
  - {name: big, when: "has(behavior.records_1h) && behavior.records_1h > 100", score: 50}
rules:
  - {id: deny-bulk, effect: deny, when: "risk.score >= 50"}
  - {id: allow, effect: allow, obligations: [{type: mask, fields: [x]}]}
  - {id: watch, effect: deny, mode: report-only, when: "subject.id == 'u-2'"}
"""


def write(tmp_path: Path, suite: str) -> Path:
    (tmp_path / "p.yaml").write_text(POLICY)
    (tmp_path / "p_test.yaml").write_text(suite)
    return tmp_path


BASE = """
defaults:
  request: {subject: {id: u-1}, action: {name: read}, resource: {type: t}}
cases:
"""


def test_all_expectation_kinds(tmp_path: Path) -> None:
    suite = (
        BASE
        + """
  - name: plain allow
    expect:
      {effect: allow, rules: [p/allow], risk: 0, signals: [], obligations: [mask], report_only: []}
  - name: behaviour drives risk
    behavior: {records_1h: 500}
    expect: {effect: deny, risk: 50, signals: [big], rules: [p/deny-bulk, p/allow], obligations: []}
  - name: report-only shows
    request: {subject: {id: u-2}}
    expect: {effect: allow, report_only: [p/watch]}
"""
    )
    report = run_tests(write(tmp_path, suite))
    assert [r.failures for r in report.results] == [(), (), ()]
    assert report.summary() == "3 passed, 0 failed"


def test_mismatches_are_listed(tmp_path: Path) -> None:
    suite = (
        BASE
        + """
  - name: wrong
    expect: {effect: deny, risk: 10, obligations: []}
"""
    )
    report = run_tests(write(tmp_path, suite))
    assert not report.ok
    failures = report.results[0].failures
    assert any(f.startswith("effect: expected 'deny'") for f in failures)
    assert any(f.startswith("risk: expected 10") for f in failures)
    assert any(f.startswith("obligations:") for f in failures)


def test_invalid_request_fails_the_case(tmp_path: Path) -> None:
    suite = (
        BASE
        + """
  - name: no subject id
    request: {subject: {id: null}}
    expect: {effect: deny}
"""
    )
    report = run_tests(write(tmp_path, suite))
    assert "invalid request" in report.results[0].failures[0]


@pytest.mark.parametrize(
    ("suite", "message"),
    [
        ("cases: []\n", "non-empty 'cases'"),
        (BASE + "  - name: x\n    expect: {rules: []}\n", "expect.effect is required"),
        (BASE + "  - name: x\n    expect: {effect: maybe}\n", "must be allow, deny or step_up"),
        (
            BASE + "  - name: x\n    now: 2026-01-01T00:00:00\n    expect: {effect: allow}\n",
            "timezone",
        ),
        (
            BASE + "  - name: x\n    expect: {effect: allow, bogus: 1}\n",
            "unknown key 'bogus' in expect",
        ),
        (
            BASE + "  - name: x\n    surprise: 1\n    expect: {effect: allow}\n",
            "unknown key 'surprise'",
        ),
        ("cases: [\n", "invalid YAML"),
    ],
)
def test_malformed_suites_are_policy_errors(tmp_path: Path, suite: str, message: str) -> None:
    with pytest.raises(PolicyError) as info:
        run_tests(write(tmp_path, suite))
    assert message in str(info.value)
    assert all(d.file.endswith("p_test.yaml") and d.line > 0 for d in info.value.diagnostics)
