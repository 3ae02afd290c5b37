"""The CLI through its real entry point, as a subprocess, plus in-process for speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from zerotrust.cli import main

POLICY = """
policy: docs
target: {resources: [doc]}
rules:
  - id: deny-night
    effect: deny
    when: "now.getHours() >= 22"
  - id: step-up-secret
    effect: step_up
    when: "resource.properties.level >= 3"
    step_up: {acr_values: [loa2]}
  - id: allow-owner
    effect: allow
    when: "resource.properties.owner == subject.id"
"""

SUITE = """
suite: docs
defaults:
  now: "2026-03-02T10:00:00Z"
  request:
    subject: {id: u-1}
    action: {name: read}
    resource: {type: doc, properties: {owner: u-1, level: 1}}
cases:
  - name: owner reads
    expect: {effect: allow, rules: [docs/allow-owner]}
  - name: secret needs step-up
    request: {resource: {properties: {level: 3}}}
    expect: {effect: step_up, step_up: {acr_values: [loa2]}}
  - name: night
    now: "2026-03-02T23:00:00+00:00"
    expect: {effect: deny, rules: [docs/deny-night, docs/allow-owner]}
"""


def request(owner: str = "u-1", level: int = 1) -> str:
    return json.dumps(
        {
            "subject": {"id": "u-1"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "properties": {"owner": owner, "level": level}},
        }
    )


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    (tmp_path / "docs.yaml").write_text(POLICY)
    (tmp_path / "docs_test.yaml").write_text(SUITE)
    return tmp_path


def test_validate_ok(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(policies)]) == 0
    assert "ok: 1 policy, 3 rules" in capsys.readouterr().out


def test_validate_reports_file_line_col(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.yaml").write_text(
        POLICY.replace('"resource.properties.level >= 3"', '"resource.properties.level >= "')
    )
    assert main(["validate", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'bad.yaml'}:10:40: [docs/step-up-secret] CEL: syntax error" in err
    assert "1 problem found" in err


def test_test_command_summary(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(policies)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "3 passed, 0 failed"


def test_test_command_failure(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (policies / "docs_test.yaml").write_text(
        SUITE.replace("effect: allow, rules", "effect: deny, rules")
    )
    assert main(["test", str(policies)]) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out and "effect: expected 'deny', got 'allow'" in out
    assert out.splitlines()[-1] == "2 passed, 1 failed"


@pytest.mark.parametrize(
    ("req", "code", "effect"),
    [(request(), 0, "allow"), (request(owner="u-2"), 3, "deny"), (request(level=3), 4, "step_up")],
)
def test_eval_exit_codes(
    policies: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    req: str,
    code: int,
    effect: str,
) -> None:
    path = tmp_path / "req.json"
    path.write_text(req)
    assert (
        main(["eval", "--policies", str(policies), str(path), "--now", "2026-03-02T10:00:00Z"])
        == code
    )
    assert json.loads(capsys.readouterr().out)["effect"] == effect


def test_eval_bad_request_and_bad_now(
    policies: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "req.json"
    path.write_text('{"subject": {}, "action": {"name": "r"}, "resource": {"type": "doc"}}')
    assert main(["eval", "--policies", str(policies), str(path)]) == 2
    assert "subject.id" in capsys.readouterr().err
    path.write_text("{nope")
    assert main(["eval", "--policies", str(policies), str(path)]) == 2
    assert main(["eval", "--policies", str(policies), str(path), "--now", "yesterday"]) == 2


def test_usage_error_exits_2() -> None:
    with pytest.raises(SystemExit) as info:
        main(["frobnicate"])
    assert info.value.code == 2


def test_eval_from_stdin_with_explain_via_python_m(policies: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zerotrust",
            "eval",
            "--policies",
            str(policies),
            "-",
            "--explain",
            "--now",
            "2026-03-02T10:00:00Z",
        ],
        input=request(),
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    decision = json.loads(proc.stdout)
    assert [t["rule"] for t in decision["explain"]] == [
        "docs/deny-night",
        "docs/step-up-secret",
        "docs/allow-owner",
    ]
