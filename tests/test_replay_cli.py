"""``zerotrust replay`` on the command line: through ``main`` and the console script."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from replay_helpers import POLICIES, ROOT, changed_policies, run_replay, write_log

from zerotrust.cli import main
from zerotrust.replay import to_json


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["replay", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def console(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", "replay", *argv],
        input=stdin,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("replay") / "decisions.jsonl"
    write_log(path)
    return path


@pytest.fixture(scope="module")
def changed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return changed_policies(tmp_path_factory.mktemp("policies"))


# --- the command -----------------------------------------------------------------------


def test_cli_no_change_exits_0(capsys: pytest.CaptureFixture[str], log: Path) -> None:
    code, out, err = cli(capsys, str(POLICIES), "--log", str(log))
    assert code == 0 and err == ""
    assert out.startswith("replayed 11 decisions against revision sha256:")
    assert out.rstrip().endswith(": 0 would change")


def test_cli_changes_exit_1_and_exit_zero_reports_only(
    capsys: pytest.CaptureFixture[str], log: Path, changed: Path
) -> None:
    code, out, _ = cli(capsys, str(changed), "--log", str(log), "--examples", "2")
    assert code == 1
    assert "  allow -> step_up: " in out
    assert "      + customer-records/step-up-confidential (" in out
    assert "first 2 changes:" in out and out.count("  line ") == 2
    code, again, _ = cli(capsys, "--policies", str(changed), "--log", str(log), "--exit-zero")
    assert code == 0 and "allow -> step_up" in again


def test_cli_json(capsys: pytest.CaptureFixture[str], log: Path, changed: Path) -> None:
    code, out, _ = cli(capsys, str(changed), "--log", str(log), "--format", "json")
    body = json.loads(out)
    assert code == 1
    assert body["replayed"] == 11 and body["lines"] == 11 and body["skipped"] == []
    (transition,) = body["transitions"]
    assert transition["from"] == "allow" and transition["to"] == "step_up"
    assert transition["newly_matching"] == {
        "customer-records/step-up-confidential": body["changed"]
    }
    assert transition["no_longer_matching"] == {}
    example = body["examples"][0]
    assert set(example) == {
        "line",
        "decision_id",
        "time",
        "subject",
        "action",
        "resource",
        "old_effect",
        "new_effect",
        "differs",
        "newly_matching",
        "no_longer_matching",
    }
    assert example["differs"] == ["effect", "step_up", "obligations"]
    assert json.loads(to_json(run_replay(changed, log))) == body


def test_cli_bad_input_exits_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, log: Path
) -> None:
    code, _, err = cli(capsys, str(POLICIES), "--log", str(tmp_path / "missing.jsonl"))
    assert code == 2 and "missing.jsonl: No such file or directory" in err
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "p.yaml").write_text("policy: p\nrules: [{id: r, effect: allow, when: 'x +'}]\n")
    code, _, err = cli(capsys, str(broken), "--log", str(log))
    assert code == 2 and "problem" in err
    junk = tmp_path / "junk.jsonl"
    junk.write_text("hello\n")
    code, out, err = cli(capsys, str(POLICIES), "--log", str(junk))
    assert code == 2 and "no replayable decision entry" in err
    assert "skipped 1 of 1 line: 1 not JSON (line 1)" in out
    corrupt = tmp_path / "cut.jsonl.gz"
    corrupt.write_bytes(gzip.compress(log.read_bytes())[:-20])
    code, _, err = cli(capsys, str(POLICIES), "--log", str(corrupt))
    assert code == 2 and "cut short or corrupt" in err


def test_cli_usage_errors(capsys: pytest.CaptureFixture[str], log: Path, changed: Path) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(POLICIES)])
    assert exit_info.value.code == 2
    assert "--log" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["replay", str(POLICIES), "--policies", str(changed), "--log", str(log)])
    assert exit_info.value.code == 2
    assert "POLICIES given twice" in capsys.readouterr().err


def test_console_script_file_gzip_and_stdin(tmp_path: Path, log: Path, changed: Path) -> None:
    same = console(str(POLICIES), "--log", str(log))
    assert same.returncode == 0, same.stderr
    moved = console(str(changed), "--log", str(log), "--format", "json")
    assert moved.returncode == 1 and moved.stderr == b""
    body = json.loads(moved.stdout)
    assert body["changed"] >= 3
    piped = console(
        str(changed), "--log", "-", "--format", "json", stdin=gzip.compress(log.read_bytes())
    )
    assert piped.returncode == 1 and json.loads(piped.stdout) == body
    empty = console(str(POLICIES), "--log", "-", stdin=b"")
    assert empty.returncode == 2 and b"no replayable decision entry in -" in empty.stderr
