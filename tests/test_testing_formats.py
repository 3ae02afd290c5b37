"""``zerotrust test``: failures that explain themselves, ``--format json|junit``, ``--run``
and one file run against the whole set of its directory."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from zerotrust.cli import main
from zerotrust.testing import CaseResult, SuiteReport, run_tests, to_json, to_junit

_NOT_XML_CHARS = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")

ROOT = Path(__file__).resolve().parents[1]

POLICY = """
policy: p
signals:
  - {name: big, when: "has(behavior.records_1h) && behavior.records_1h > 100", score: 50}
rules:
  - {id: deny-bulk, effect: deny, when: "risk.score >= 50"}
  - id: r
    effect: allow
    when: "subject.properties.wrd == 'x'"
  - {id: allow-word, effect: allow, when: "subject.properties.word == 'x'"}
"""

SUITE = """
defaults:
  request:
    subject: {id: u-1, properties: {word: x}}
    action: {name: read}
    resource: {type: t}
cases:
  - name: word allows
    expect: {effect: allow, rules: [p/allow-word]}
  - name: typo wins
    expect: {effect: allow, rules: [p/r]}
  - name: bulk is refused
    behavior: {records_1h: 500}
    expect: {effect: allow}
"""

OTHER = """
cases:
  - name: other suite
    request: {subject: {id: u-1}, action: {name: read}, resource: {type: t}}
    expect: {effect: deny}
"""


@pytest.fixture
def suite_dir(tmp_path: Path) -> Path:
    (tmp_path / "p.yaml").write_text(POLICY)
    (tmp_path / "p_test.yaml").write_text(SUITE)
    (tmp_path / "other_test.yaml").write_text(OTHER)
    return tmp_path


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_a_failure_names_the_evaluation_error_and_its_rule(suite_dir: Path) -> None:
    report = run_tests(suite_dir)
    typo = next(r for r in report.results if r.name == "typo wins")
    lines = typo.explanation()
    assert lines[0] == "rules: expected ['p/r'], got ['p/allow-word']"
    assert "got: effect allow, rules p/allow-word, risk 0" in lines
    assert any(line.startswith("error in rule p/r: ") and "wrd" in line for line in lines), lines


def test_a_failure_shows_the_signals_that_fired(suite_dir: Path) -> None:
    bulk = next(r for r in run_tests(suite_dir).results if r.name == "bulk is refused")
    assert bulk.explanation()[:2] == (
        "effect: expected 'allow', got 'deny'",
        "got: effect deny, rules p/allow-word, p/deny-bulk, risk 50 (signals big)",
    )


def test_text_output_explains_without_v_and_v_adds_the_trace(
    suite_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test", str(suite_dir)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "PASS" not in out
    assert "    error in rule p/r: " in out and "wrd" in out
    assert "    got: effect deny, rules p/allow-word, p/deny-bulk, risk 50 (signals big)" in out
    assert "trace:" not in out
    assert out.splitlines()[-1] == "2 passed, 2 failed"

    assert main(["test", "-v", str(suite_dir)]) == 1
    out = capsys.readouterr().out
    assert "PASS" in out
    assert "    trace: signal p/big: matched" in out
    assert "    trace: rule p/deny-bulk (deny): matched" in out
    assert any(line.startswith("    trace: rule p/r (allow): error") for line in out.splitlines())


def test_run_selects_cases_by_name(suite_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", "--run", "^word", str(suite_dir)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"
    assert [r.name for r in run_tests(suite_dir, select="suite|typo").results] == [
        "other suite",
        "typo wins",
    ]
    # Nothing selected is "no test cases", a failure, as for an empty directory.
    assert main(["test", "--run", "nothing-by-this-name", str(suite_dir)]) == 1
    assert "no test cases found" in capsys.readouterr().out


def test_run_with_a_bad_regex_is_a_usage_error(suite_dir: Path) -> None:
    result = run_cli("test", "--run", "(", str(suite_dir))
    assert result.returncode == 2
    assert "not a regular expression" in result.stderr


def test_json_format_has_every_case(suite_dir: Path) -> None:
    result = run_cli("test", "--format", "json", str(suite_dir))
    assert result.returncode == 1
    body = json.loads(result.stdout)
    assert (body["passed"], body["failed"]) == (2, 2)
    cases = {c["name"]: c for c in body["cases"]}
    assert set(cases) == {"other suite", "word allows", "typo wins", "bulk is refused"}
    typo = cases["typo wins"]
    assert typo["file"] == str(suite_dir / "p_test.yaml")
    assert typo["passed"] is False
    assert typo["expected"] == {"effect": "allow", "rules": ["p/r"]}
    assert typo["got"]["effect"] == "allow" and typo["got"]["rules"] == ["p/allow-word"]
    assert typo["got"]["errors"][0]["rule"] == "p/r"
    assert any("error in rule p/r" in line for line in typo["explanation"])
    assert cases["word allows"]["passed"] is True
    assert cases["word allows"]["explanation"][0].startswith("got: effect allow")


def test_json_format_exit_0_when_all_pass(suite_dir: Path) -> None:
    result = run_cli("test", "--format", "json", "--run", "word", str(suite_dir))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["failed"] == 0


def test_junit_format_is_xml_ci_systems_read(suite_dir: Path) -> None:
    result = run_cli("test", "--format", "junit", str(suite_dir))
    assert result.returncode == 1
    root = ET.fromstring(result.stdout.encode())
    assert root.tag == "testsuites"
    assert (root.get("tests"), root.get("failures")) == ("4", "2")
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    main_suite = suites[str(suite_dir / "p_test.yaml")]
    assert set(suites) == {str(suite_dir / "p_test.yaml"), str(suite_dir / "other_test.yaml")}
    assert (main_suite.get("tests"), main_suite.get("failures")) == ("3", "2")
    cases = main_suite.findall("testcase")
    assert [c.get("name") for c in cases] == ["word allows", "typo wins", "bulk is refused"]
    assert {c.get("classname") for c in cases} == {str(suite_dir / "p_test.yaml")}
    assert cases[0].find("failure") is None
    failure = cases[1].find("failure")
    assert failure is not None
    assert failure.get("message") == "rules: expected ['p/r'], got ['p/allow-word']"
    assert failure.text is not None and "error in rule p/r" in failure.text


def test_junit_escapes_names_and_messages(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(POLICY)
    (tmp_path / "p_test.yaml").write_text(
        SUITE.replace("typo wins", 'typo <wins> & "quotes"').replace("word allows", "word 'allows'")
    )
    root = ET.fromstring(to_junit(run_tests(tmp_path)))
    names = [c.get("name") for c in root.iter("testcase")]
    assert 'typo <wins> & "quotes"' in names and "word 'allows'" in names
    assert json.loads(to_json(run_tests(tmp_path)))["failed"] == 2


def test_exit_codes_are_the_same_in_every_format(
    suite_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for fmt in ("text", "json", "junit"):
        assert main(["test", "--format", fmt, str(suite_dir)]) == 1
        assert main(["test", "--format", fmt, "--run", "word", str(suite_dir)]) == 0
    capsys.readouterr()


def test_one_file_runs_its_own_suite_against_the_whole_directory(
    suite_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # `other_test.yaml` belongs to no policy file of its name: only p's suite runs.
    assert main(["test", "--run", "word", str(suite_dir / "p.yaml")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"
    assert main(["test", str(suite_dir / "other_test.yaml")]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"


def test_customer_records_yaml_alone_no_longer_fails_on_risk_expected_30_got_0(
    tmp_path: Path,
) -> None:
    """`zerotrust test policies/customer-records.yaml` once loaded that file only, so its
    suite saw no risk signals (no risk policy, no network data) and failed on `risk`."""
    shipped = tmp_path / "policies"
    shutil.copytree(ROOT / "policies", shipped)
    result = run_cli("test", "policies/customer-records.yaml", cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1].endswith(" passed, 0 failed")
    assert "risk: expected" not in result.stdout
    suite = run_tests(shipped / "customer-records.yaml")
    assert suite.results and suite.ok
    assert {r.file for r in suite.results} == {str(shipped / "customer-records_test.yaml")}
    unmanaged = next(r for r in suite.results if "unmanaged device" in r.name)
    got = unmanaged.got()
    assert got is not None
    assert (got["risk"], got["signals"]) == (30, ["unmanaged-device"])


GUIDE = ROOT / "docs" / "getting-started.md"


def _guide_set(tmp_path: Path) -> tuple[str, Path]:
    """The guide's policy, data file and suite (its first three YAML blocks), written out."""
    text = GUIDE.read_text(encoding="utf-8")
    policy, data, suite = re.findall(r"```yaml[^\n]*\n(.*?)```", text, re.S)[:3]
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "customer-records.yaml").write_text(policy)
    (policies / "network.data.yaml").write_text(data)
    (policies / "customer-records_test.yaml").write_text(suite)
    return text, policies


def _transcript(text: str, command: str) -> str:
    """The output the guide shows for ``$ command``."""
    match = re.search(r"```(?:text|console)\n\$ " + re.escape(command) + r"\n(.*?)```", text, re.S)
    assert match is not None, command
    return match.group(1)


def test_the_guides_test_transcripts_are_what_the_cli_prints(tmp_path: Path) -> None:
    text, policies = _guide_set(tmp_path)
    verbose = run_cli("test", "-v", "--run", "unmanaged", "policies", cwd=tmp_path)
    assert verbose.stdout == _transcript(text, "zerotrust test -v --run unmanaged policies")
    assert run_cli("test", "policies", cwd=tmp_path).stdout == "5 passed, 0 failed\n"
    policy = policies / "customer-records.yaml"
    typo = "subject.properties.departmnt == resource.properties.owner_dept"
    assert typo in text
    policy.write_text(
        policy.read_text().replace(
            "subject.properties.department ==", "subject.properties.departmnt =="
        )
    )
    failing = run_cli("test", "policies", cwd=tmp_path)
    assert failing.returncode == 1
    shown = re.findall(r"```text\n\$ zerotrust test policies\n(.*?)```", text, re.S)
    assert failing.stdout in shown


def test_the_guides_python_snippet_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text, _ = _guide_set(tmp_path)
    snippet = re.search(r"```python\n(from zerotrust.testing import run_tests.*?)```", text, re.S)
    assert snippet is not None
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {}
    exec(snippet.group(1), namespace)
    namespace["test_policies"]()  # type: ignore[operator]


@settings(max_examples=200, deadline=None)
@given(name=st.text(), file=st.text(min_size=1), failure=st.text())
def test_junit_is_well_formed_whatever_the_names(name: str, file: str, failure: str) -> None:
    report = SuiteReport(
        (CaseResult(file, "s", name, 1, (failure,)), CaseResult(file, "s", name, 2, ()))
    )
    root = ET.fromstring(to_junit(report))
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert [c.get("line") for c in cases] == ["1", "2"]
    assert (suite.get("tests"), suite.get("failures")) == ("2", "1")
    failed = cases[0].find("failure")
    assert failed is not None and cases[1].find("failure") is None
    # Attributes come back exactly; a character XML cannot carry is shown as \uXXXX.
    for shown, given_ in ((cases[0].get("name"), name), (failed.get("message"), failure)):
        expected = _NOT_XML_CHARS.sub(lambda m: f"\\u{ord(m.group()):04x}", given_)
        assert shown == expected
    assert json.loads(to_json(report))["cases"][0]["name"] == name
