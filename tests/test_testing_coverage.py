"""``zerotrust test --coverage``: which rules and signals the cases saw both ways."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zerotrust.cli import main
from zerotrust.testing import SuiteReport, coverage_of, run_tests, to_json

ROOT = Path(__file__).resolve().parents[1]

DOCS = """\
policy: docs
target: {resources: [doc]}
signals:
  - {name: big, when: "has(behavior.n) && behavior.n > 100", score: 60}
  - {name: always, score: 0}
rules:
  - {id: deny-bulk, effect: deny, when: "risk.score >= 50"}
  - {id: allow, effect: allow, when: "subject.id != ''"}
  - {id: never, effect: deny, when: "subject.id == 'nobody'"}
  - {id: broken, effect: step_up, when: "subject.properties.missing == 1"}
  - {id: watch, effect: deny, mode: report-only, when: "subject.id == 'u-2'"}
"""
OTHER = """\
policy: other
target: {resources: [file]}
rules:
  - {id: open, effect: allow}
"""
SUITE = """\
defaults:
  request: {subject: {id: u-1}, action: {name: read}, resource: {type: doc}}
cases:
  - name: plain
    expect: {effect: step_up}
  - name: bulk
    behavior: {n: 500}
    expect: {effect: deny}
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    (tmp_path / "docs.yaml").write_text(DOCS, encoding="utf-8")
    (tmp_path / "other.yaml").write_text(OTHER, encoding="utf-8")
    (tmp_path / "docs_test.yaml").write_text(SUITE, encoding="utf-8")
    return tmp_path


def test_each_rule_and_signal_is_counted_by_outcome(folder: Path) -> None:
    coverage = coverage_of(run_tests(folder))
    [docs, other] = coverage.files
    assert (docs.file, other.file) == (str(folder / "docs.yaml"), str(folder / "other.yaml"))
    seen = {i.ref: (i.matched, i.not_matched, i.errors, i.covered) for i in docs.items}
    assert seen == {
        "docs/big": (1, 1, 0, True),
        "docs/always": (2, 0, 0, True),  # no condition: matching is all it can do
        "docs/deny-bulk": (1, 1, 0, True),
        "docs/allow": (2, 0, 0, False),
        "docs/never": (0, 2, 0, False),
        "docs/broken": (0, 0, 2, False),
        "docs/watch": (0, 2, 0, False),
    }
    assert [(i.ref, i.covered, i.matched + i.not_matched + i.errors) for i in other.items] == [
        ("other/open", False, 0)  # its target never applied: not covered
    ]
    assert (docs.covered, docs.percent, other.percent) == (3, 42.9, 0.0)
    assert coverage.percent == 37.5


def test_the_text_names_each_gap_at_its_line(folder: Path) -> None:
    lines = coverage_of(run_tests(folder)).lines()
    docs, other = folder / "docs.yaml", folder / "other.yaml"
    assert lines == (
        "coverage: 3 of 8 rules and signals covered (37.5%)",
        f"  {docs}: 3 of 7 (42.9%)",
        f"    {docs}:8:5 rule docs/allow: never unmatched (its condition was only seen true)",
        f"    {docs}:9:5 rule docs/never: never matched (its condition was only seen false)",
        f"    {docs}:10:5 rule docs/broken: only raised errors",
        f"    {docs}:11:5 report-only docs/watch: never matched "
        "(its condition was only seen false)",
        f"  {other}: 0 of 1 (0.0%)",
        f"    {other}:4:5 rule other/open: never applied (no case's request is in its policy's "
        "target)",
    )


def test_selected_cases_only_count(folder: Path) -> None:
    seen = {
        i.ref: i.covered
        for f in coverage_of(run_tests(folder, select="plain")).files
        for i in f.items
    }
    assert seen["docs/big"] is False and seen["docs/always"] is True


def test_json_carries_the_coverage_only_when_asked(folder: Path) -> None:
    report = run_tests(folder)
    assert "coverage" not in json.loads(to_json(report))
    body = json.loads(to_json(report, coverage_of(report)))["coverage"]
    assert (body["covered"], body["total"], body["percent"]) == (3, 8, 37.5)
    allow = next(i for i in body["files"][0]["items"] if i["ref"] == "docs/allow")
    assert allow == {
        "ref": "docs/allow",
        "kind": "rule",
        "line": 8,
        "column": 5,
        "unconditional": False,
        "matched": 2,
        "not_matched": 0,
        "errors": 0,
        "covered": False,
    }


def test_a_report_without_its_policy_set_is_refused() -> None:
    with pytest.raises(TypeError, match="needs the policy set"):
        coverage_of(SuiteReport(()))


def test_cli_prints_coverage_after_the_summary_and_keeps_the_exit_code(
    folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(folder), "--coverage"]) == 0  # 37.5% fails nothing
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "2 passed, 0 failed"
    assert out[1] == "coverage: 3 of 8 rules and signals covered (37.5%)"
    (folder / "docs_test.yaml").write_text(SUITE.replace("step_up}", "allow}"))
    assert main(["test", str(folder), "--coverage"]) == 1  # a failing case still fails
    assert "coverage: 3 of 8" in capsys.readouterr().out
    assert main(["test", str(folder)]) == 1
    assert "rules and signals covered" not in capsys.readouterr().out


def test_cli_json_and_junit(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(folder), "--coverage", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["coverage"]["percent"] == 37.5
    assert main(["test", str(folder), "--coverage", "--format", "junit"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--coverage has no JUnit form" in captured.err


def test_coverage_through_the_console_script(folder: Path) -> None:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zerotrust", "test", str(folder), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=120,
            check=False,
        )

    text = run("--coverage")
    assert text.returncode == 0, text.stderr
    assert f"    {folder / 'docs.yaml'}:9:5 rule docs/never: never matched" in text.stdout
    as_json = run("--coverage", "--format", "json")
    assert json.loads(as_json.stdout)["coverage"]["files"][1]["percent"] == 0.0
    assert run("--coverage", "--format", "junit").returncode == 2


def test_the_shipped_policies_are_fully_covered_by_their_suites() -> None:
    coverage = coverage_of(run_tests(ROOT / "policies"))
    gaps = [line for line in coverage.lines() if line.startswith("    ")]
    assert not gaps, "\n".join(gaps)
    assert coverage.percent == 100.0


def test_the_guide_shows_what_coverage_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from test_testing_suites import guide_set, transcript

    guide_set(tmp_path)
    monkeypatch.chdir(tmp_path)
    command = 'zerotrust test policies --coverage --run "department|MFA"'
    [shown] = transcript(command)
    assert main(["test", "policies", "--coverage", "--run", "department|MFA"]) == 0
    assert capsys.readouterr().out.splitlines() == shown
    assert main(["test", "policies", "--coverage"]) == 0  # "the suite above covers all six"
    assert "coverage: 6 of 6 rules and signals covered (100.0%)" in capsys.readouterr().out
