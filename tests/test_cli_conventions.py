"""The CLI's conventions: --version, a bare command, one path convention, the stdin
prompt on a terminal, shell completion; through ``python -m zerotrust`` and ``main``."""

from __future__ import annotations

import argparse
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import zerotrust
from zerotrust.cli import main

POLICY = """
policy: docs
target: {resources: [doc]}
rules:
  - id: allow-owner
    effect: allow
    when: "resource.properties.owner == subject.id"
"""

REQUEST = {
    "subject": {"id": "u-1"},
    "action": {"name": "read"},
    "resource": {"type": "doc", "properties": {"owner": "u-1"}},
}

PROMPT = "zerotrust eval: reading the request from standard input (Ctrl-D to end)"


def zerotrust_cli(*args: str, stdin: str | None = "") -> subprocess.CompletedProcess[str]:
    """``python -m zerotrust ARGS``: the real entry point."""
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", *args],
        input=stdin,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "docs.yaml").write_text(POLICY)
    return folder


@pytest.fixture
def request_file(tmp_path: Path) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(REQUEST))
    return path


# --- --version and a bare command --------------------------------------------------------


def test_version_prints_the_package_version() -> None:
    result = zerotrust_cli("--version")
    assert result.returncode == 0
    assert result.stdout == f"zerotrust {zerotrust.__version__}\n"


def test_bare_command_prints_the_help_and_exits_2() -> None:
    result = zerotrust_cli()
    assert result.returncode == 2
    assert result.stderr.startswith("usage: zerotrust")
    assert "error" not in result.stderr
    for command in ("validate", "test", "eval", "demo", "serve", "report", "completion"):
        assert f"\n    {command}" in result.stderr


def test_bare_command_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "validate" in capsys.readouterr().err


# --- one path convention: positional, the old flag as an alias ---------------------------


@pytest.mark.parametrize(
    "form",
    [
        ["POLICIES", "REQUEST"],
        ["--policies", "POLICIES", "REQUEST"],
        ["REQUEST", "--policies", "POLICIES"],
        ["POLICIES", "REQUEST", "--policies", "POLICIES"],
    ],
    ids=["positional", "flag", "flag-after", "both-the-same"],
)
def test_eval_takes_policies_positionally_or_by_flag(
    policies: Path, request_file: Path, form: list[str]
) -> None:
    args = [{"POLICIES": str(policies), "REQUEST": str(request_file)}.get(a, a) for a in form]
    result = zerotrust_cli("eval", *args, "--compact")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["effect"] == "allow"


@pytest.mark.parametrize(
    "form",
    [["POLICIES"], ["POLICIES", "-"], ["--policies", "POLICIES"], ["--policies", "POLICIES", "-"]],
)
def test_eval_reads_stdin_without_a_request_file(policies: Path, form: list[str]) -> None:
    args = [str(policies) if a == "POLICIES" else a for a in form]
    result = zerotrust_cli("eval", *args, stdin=json.dumps(REQUEST))
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["effect"] == "allow"


def test_eval_policies_given_twice_and_different_is_a_usage_error(
    policies: Path, request_file: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    other.mkdir()
    result = zerotrust_cli("eval", str(policies), str(request_file), "--policies", str(other))
    assert result.returncode == 2
    assert result.stdout == ""
    last = result.stderr.splitlines()[-1]
    assert last.startswith("zerotrust eval: error: POLICIES given twice")
    assert repr(str(policies)) in last and f"--policies {str(other)!r}" in last


def test_eval_without_policies_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["eval"])
    assert info.value.code == 2
    assert "required: POLICIES (or --policies)" in capsys.readouterr().err


def test_demo_takes_policies_positionally(tmp_path: Path) -> None:
    from zerotrust.demo import default_policies

    shipped = str(default_policies())
    for args in ([shipped], ["--policies", shipped], [shipped, "--policies", shipped]):
        result = zerotrust_cli("demo", *args)
        assert result.returncode == 0, result.stderr
        assert f"policies from {shipped}" in result.stdout
    missing = str(tmp_path / "missing")
    result = zerotrust_cli("demo", missing, "--policies", shipped)
    assert result.returncode == 2
    assert "POLICIES given twice" in result.stderr and missing in result.stderr


def test_report_takes_the_log_positionally(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text("\n")
    out = tmp_path / "report.html"
    for args in ([str(log)], ["--log", str(log)]):
        result = zerotrust_cli("report", *args, "--out", str(out))
        assert result.returncode == 1  # read, and found without a decision record
        assert f"no decision records in {log}" in result.stderr
    result = zerotrust_cli("report", str(log), "--log", str(tmp_path / "b.jsonl"), "--out", "x")
    assert result.returncode == 2
    assert "LOG given twice" in result.stderr
    result = zerotrust_cli("report", "--out", str(out))
    assert result.returncode == 2
    assert "required: LOG (or --log)" in result.stderr


def test_validate_and_test_keep_their_positional_path(policies: Path) -> None:
    assert zerotrust_cli("validate", str(policies)).returncode == 0
    result = zerotrust_cli("test", str(policies))
    assert result.returncode == 1 and "no test cases found" in result.stdout


# --- eval on a terminal says it is reading standard input ---------------------------------


def _read_until(fd: int, needle: bytes, seconds: float = 30) -> bytes:
    seen = b""
    deadline = time.monotonic() + seconds
    while needle not in seen and time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.2)
        if ready:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            seen += chunk
    return seen


def test_eval_on_a_terminal_says_it_reads_standard_input(policies: Path) -> None:
    controller, terminal = pty.openpty()
    err_read, err_write = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-m", "zerotrust", "eval", str(policies), "--compact"],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=err_write,
    )
    os.close(terminal)
    os.close(err_write)
    try:
        # The message comes before the wait: the request is typed only after it is seen.
        prompt = _read_until(err_read, PROMPT.encode())
        assert PROMPT.encode() in prompt
        os.write(controller, json.dumps(REQUEST).encode() + b"\n\x04")  # Ctrl-D ends it
        stdout, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(controller)
    rest = _read_until(err_read, b"\0", seconds=1)
    os.close(err_read)
    assert process.returncode == 0, prompt + rest
    assert json.loads(stdout)["effect"] == "allow"
    assert (prompt + rest).decode() == PROMPT + "\n"


@pytest.mark.parametrize("source", ["pipe", "file"])
def test_eval_from_a_pipe_or_file_says_nothing(
    policies: Path, request_file: Path, source: str
) -> None:
    if source == "pipe":
        result = zerotrust_cli("eval", str(policies), stdin=json.dumps(REQUEST))
    else:
        with request_file.open() as stdin:
            result = subprocess.run(
                [sys.executable, "-m", "zerotrust", "eval", str(policies), "-"],
                stdin=stdin,
                capture_output=True,
                text=True,
                check=False,
                timeout=60,
            )
    assert result.returncode == 0
    assert result.stderr == ""


# --- shell completion ---------------------------------------------------------------------


@pytest.mark.parametrize("shell", ["bash", "zsh"])
def test_completion_prints_the_script(shell: str) -> None:
    pytest.importorskip("shtab")
    result = zerotrust_cli("completion", shell)
    assert result.returncode == 0, result.stderr
    script = result.stdout
    for command in ("validate", "eval", "demo", "report", "completion"):
        assert command in script
    assert "--policies" in script and "--version" in script
    if shutil.which(shell):  # the script is valid for its shell
        assert subprocess.run([shell, "-n"], input=script, text=True, check=False).returncode == 0


def test_bash_completion_completes_commands_and_paths(policies: Path) -> None:
    pytest.importorskip("shtab")
    if shutil.which("bash") is None:
        pytest.skip("no bash")
    script = zerotrust_cli("completion", "bash").stdout
    (policies.parent / "completion.bash").write_text(script)
    probe = (
        "source completion.bash\n"
        'complete_line() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=();\n'
        '  COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; _shtab_zerotrust; echo "${COMPREPLY[*]}"; }\n'
        "complete_line zerotrust val\n"
        "complete_line zerotrust eval pol\n"
        "complete_line zerotrust completion ''\n"
    )
    result = subprocess.run(
        ["bash", "-c", probe],
        cwd=policies.parent,
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    lines = result.stdout.splitlines()
    assert lines[0] == "validate", result.stderr
    assert lines[1].startswith("policies"), result.stderr
    assert lines[2].split() == ["bash", "zsh"], result.stderr


def test_completion_without_shtab_is_one_line_and_exit_2() -> None:
    code = (
        "import sys; sys.modules['shtab'] = None\n"  # as if it were not installed
        "from zerotrust.cli import main; raise SystemExit(main(['completion', 'bash']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert len(result.stderr.splitlines()) == 1
    assert "pip install shtab" in result.stderr


def test_completion_without_shtab_in_process(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "shtab", None)
    assert main(["completion", "zsh"]) == 2
    assert "pip install shtab" in capsys.readouterr().err


def test_completion_of_an_unknown_shell_is_a_usage_error() -> None:
    result = zerotrust_cli("completion", "fish")
    assert result.returncode == 2
    assert "invalid choice: 'fish'" in result.stderr


def test_the_schema_command_offers_every_shipped_kind() -> None:
    from zerotrust.cli._args import build_parser
    from zerotrust.policy.schemas import KINDS

    parser = build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    kind = next(a for a in commands.choices["schema"]._actions if a.dest == "kind")
    assert tuple(kind.choices or ()) == KINDS
