"""The CLI through its real entry point, as a subprocess, plus in-process for speed."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given, settings
from strategies import malformed_request_inputs

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


# --- eval: every malformed request is one line and exit 2 --------------------------------


def _eval_stdin(policies: Path, data: bytes) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", "eval", "--policies", str(policies), "-"],
        input=data,
        capture_output=True,
        check=False,
        env={**os.environ, "LC_ALL": "C"},  # a locale that would smuggle bad bytes in
    )


@pytest.mark.parametrize(
    "data",
    [
        b'{"subject": {"id": "u"}, "context": {"x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
        b"[" * 100_000 + b"]" * 100_000,
    ],
    ids=["deep-in-context", "deep-document"],
)
def test_eval_on_a_deeply_nested_request_is_one_line_and_exit_2(
    policies: Path, data: bytes
) -> None:
    proc = _eval_stdin(policies, data)
    assert proc.returncode == 2
    assert proc.stdout == b""
    assert "nested too deeply" in one_line(proc.stderr.decode())


def test_eval_on_bytes_that_are_not_utf8_is_one_line_and_exit_2(policies: Path) -> None:
    data = b'{"subject": {"id": "u-\xff"}, "action": {"name": "r"}, "resource": {"type": "doc"}}'
    proc = _eval_stdin(policies, data)
    assert proc.returncode == 2
    assert "not UTF-8" in one_line(proc.stderr.decode())


@settings(max_examples=150, deadline=None)
@given(data=malformed_request_inputs())
def test_every_malformed_request_is_one_line_and_exit_2(
    tmp_path_factory: pytest.TempPathFactory, data: bytes
) -> None:
    folder = tmp_path_factory.mktemp("eval")
    (folder / "docs.yaml").write_text(POLICY)
    request = folder / "request.json"
    request.write_bytes(data)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["eval", "--policies", str(folder), str(request)])
    assert code == 2
    assert out.getvalue() == ""
    line = one_line(err.getvalue())
    assert line.startswith("zerotrust: invalid request: ") and line.isprintable()


# --- serve: starts, or fails in one line with exit 2 ------------------------------------

SECRET = "cli-serve-secret-0123456789"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def zerotrust(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m zerotrust ARGS`` to its end: the real entry point."""
    return subprocess.run(
        [sys.executable, "-m", "zerotrust", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@contextlib.contextmanager
def serve_process(*args: str) -> Iterator[str]:
    """``zerotrust serve ARGS --port <free>`` running; yields its base URL."""
    port = free_port()
    command = [sys.executable, "-m", "zerotrust", "serve", *args, "--port", str(port)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        with httpx.Client(trust_env=False) as client:
            while True:
                if process.poll() is not None:
                    assert process.stderr is not None
                    pytest.fail(f"serve exited {process.returncode}: {process.stderr.read()!r}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{url}/healthz").status_code == 200:
                        break
                assert time.monotonic() < deadline, "serve did not start"
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=20)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture
def etc(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for server files, outside the policy directory (which is tmp_path)."""
    return tmp_path_factory.mktemp("etc")


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def test_serve_starts_answers_and_logs_decisions(policies: Path, etc: Path) -> None:
    config = etc / "server.yaml"
    config.write_text(f"bearer_secrets: [{SECRET}]\ndecision_log: decisions.jsonl\n")
    with (
        serve_process("--policies", str(policies), "--config", str(config)) as url,
        httpx.Client(base_url=url, trust_env=False) as client,
    ):
        body = {
            "subject": {"type": "user", "id": "u-1"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "d-1", "properties": {"owner": "u-1", "level": 1}},
        }
        answer = client.post(
            "/access/v1/evaluation", json=body, headers={"authorization": f"Bearer {SECRET}"}
        )
        assert answer.status_code == 200
        assert "server" not in answer.headers  # uvicorn's header is off
        assert client.post("/access/v1/evaluation", json=body).status_code == 401
    lines = (etc / "decisions.jsonl").read_text().splitlines()
    assert len(lines) == 1


def test_serve_port_out_of_range_is_a_usage_error(policies: Path) -> None:
    result = zerotrust("serve", "--policies", str(policies), "--insecure-local", "--port", "99999")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == (
        "zerotrust serve: error: argument --port: must be a port number 1..65535, not '99999'"
    )


@pytest.mark.parametrize("port", ["0", "-1", "65536", "http", "8080.0", "\uff18\uff10\uff18\uff10"])
def test_serve_port_is_checked_at_argument_parsing(
    policies: Path, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["serve", "--policies", str(policies), "--insecure-local", "--port", port])
    assert info.value.code == 2
    assert "must be a port number 1..65535" in capsys.readouterr().err


def test_serve_on_a_port_in_use_is_one_line_exit_2(policies: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = zerotrust(
            "serve", "--policies", str(policies), "--insecure-local", "--port", str(port)
        )
    assert result.returncode == 2
    assert one_line(result.stderr) == (
        f"zerotrust serve: cannot listen on 127.0.0.1:{port}: address already in use"
    )


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("192.0.2.1", "cannot assign requested address"),  # TEST-NET-1: not on this machine
        ("nohost.invalid", "cannot listen on nohost.invalid:"),
        ("bad host!", "cannot listen on bad host!:"),
    ],
)
def test_serve_on_an_address_it_cannot_bind_is_one_line_exit_2(
    policies: Path, etc: Path, host: str, reason: str
) -> None:
    config = etc / "server.yaml"
    config.write_text(f"bearer_secrets: [{SECRET}]\n")
    result = zerotrust(
        "serve", "--policies", str(policies), "--config", str(config), "--host", host
    )
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("zerotrust serve: cannot listen on ") and reason in line


@pytest.mark.parametrize(
    ("config_text", "message"),
    [
        (None, "cannot read"),  # no such file
        ("bearer_secrets: [\n  - x\n", "server.yaml:2:3: invalid YAML"),  # a multi-line reason
        ("bearer_secrets: [short]\n", "at least 16 characters"),
        (f"bearer_secrets: [{SECRET}]\nmax_requests_in_flight: 0\n", "max_requests_in_flight"),
        (f"bearer_secrets: [{SECRET}]\ndecision_log: .\n", "cannot open decision log"),
    ],
    ids=["missing", "bad-yaml", "short-secret", "in-flight-0", "log-is-a-directory"],
)
def test_serve_with_a_bad_config_is_one_line_exit_2(
    policies: Path, etc: Path, config_text: str | None, message: str
) -> None:
    config = etc / "server.yaml"
    if config_text is not None:
        config.write_text(config_text)
    result = zerotrust("serve", "--policies", str(policies), "--config", str(config))
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("zerotrust serve: ") and message in line


def test_serve_with_invalid_policies_exits_1_with_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(POLICY.replace("effect: deny", "effect: maybe"))
    result = zerotrust("serve", "--policies", str(tmp_path), "--insecure-local")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines()[-1] == "1 problem found"
