"""``zerotrust serve`` as an operator runs it: reloads on SIGHUP and on file changes
(with workers too, under load), decision-log sinks, JSON log lines. Real processes on
127.0.0.1."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from metrics_helpers import samples

from zerotrust import PolicyDecisionPoint

ROOT = Path(__file__).resolve().parents[1]
BODY = json.dumps(
    {
        "subject": {"type": "user", "id": "u-1", "properties": {"email": "u1@example.com"}},
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d-1"},
    }
)
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals and SO_REUSEPORT")


def policy(effect: str, n: int = 0) -> str:
    rules = f"rules:\n  - id: r\n    effect: {effect}\n"
    return f"# version {n}\npolicy: p\ntarget: {{resources: [doc]}}\n{rules}"


BROKEN = policy("allow") + "    when: 'x =='\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def call(port: int, method: str = "POST", path: str = "/access/v1/evaluation") -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"Content-Type": "application/json", "Connection": "close"}
        connection.request(method, path, BODY if method == "POST" else None, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def effect(port: int) -> tuple[str, str]:
    status, body = call(port)
    assert status == 200, body
    context = json.loads(body)["context"]
    return context["effect"], context["policy_revision"]


def wait_for(condition: object, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():  # type: ignore[operator]
                return True
        except OSError:
            pass
        time.sleep(0.05)
    return False


@contextmanager
def serve(policies: Path, *flags: str) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """The server, its standard output and error in ``out.txt`` / ``err.txt`` beside
    the policies' directory."""
    port = free_port()
    command = [sys.executable, "-m", "zerotrust", "serve", "--policies", str(policies)]
    command += ["--insecure-local", "--port", str(port), *flags]
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROTRUST_")}
    env["PYTHONPATH"] = str(ROOT)
    with (
        (policies.parent / "out.txt").open("wb") as out,
        (policies.parent / "err.txt").open("wb") as err,
    ):
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
    try:
        assert wait_for(lambda: call(port, "GET", "/healthz")[0] == 200), "did not start"
        yield process, port
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    found = tmp_path / "policies"
    found.mkdir()
    (found / "p.yaml").write_text(policy("allow"))
    return found


def serving_pids(port: int, tries: int = 40) -> set[str]:
    """The workers that answered /metrics over ``tries`` new connections."""
    found = set()
    for _ in range(tries):
        text = call(port, "GET", "/metrics")[1].decode()
        found |= {k for k in samples(text) if k.startswith("zerotrust_process_info")}
    return found


def revision_of(policies: Path) -> str:
    return PolicyDecisionPoint.from_path(policies).revision


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sighup_reloads_every_worker_and_a_broken_set_keeps_the_last_good(
    policies: Path, workers: str
) -> None:
    with serve(policies, "--workers", workers) as (process, port):
        assert effect(port)[0] == "allow"
        (policies / "p.yaml").write_text(policy("deny", 1))
        denying = revision_of(policies)
        process.send_signal(signal.SIGHUP)
        # Every worker: new connections reach any of them.
        assert wait_for(lambda: all(effect(port) == ("deny", denying) for _ in range(8)))
        (policies / "p.yaml").write_text(BROKEN)
        process.send_signal(signal.SIGHUP)
        assert wait_for(
            lambda: (
                samples(call(port, "GET", "/metrics")[1].decode()).get(
                    'zerotrust_policy_reloads_total{result="failed"}', 0
                )
                == int(workers)
            )
        )
        assert all(effect(port) == ("deny", denying) for _ in range(8))  # the last good


def test_watch_reloads_on_a_file_change(policies: Path) -> None:
    with serve(policies, "--watch", "--watch-debounce-ms", "50") as (_, port):
        assert effect(port)[0] == "allow"
        (policies / "p.yaml").write_text(policy("deny", 1))
        assert wait_for(lambda: effect(port)[0] == "deny")


def test_requests_during_many_reloads_are_all_answered_from_one_whole_revision(
    policies: Path,
) -> None:
    """Some sets deny, some allow, some do not load; every answer is a 200 whose effect
    is the one of the revision it names."""
    effect_of = {revision_of(policies): "allow"}
    answers: list[tuple[int, bytes]] = []
    failures: list[OSError] = []
    stop = threading.Event()
    with serve(policies, "--workers", "2") as (process, port):
        assert wait_for(lambda: len(serving_pids(port)) == 2), "both workers serve"

        def load() -> None:
            while not stop.is_set():
                try:
                    answers.append(call(port))
                except OSError as exc:  # refused, reset: never for a reload
                    failures.append(exc)
                    return

        clients = [threading.Thread(target=load) for _ in range(2)]
        for client in clients:
            client.start()
        try:
            for n in range(1, 101):
                if n % 7 == 3:
                    (policies / "p.yaml").write_text(BROKEN)
                else:
                    wanted = "deny" if n % 2 else "allow"
                    (policies / "p.yaml").write_text(policy(wanted, n))
                    effect_of[revision_of(policies)] = wanted
                process.send_signal(signal.SIGHUP)
                time.sleep(0.05)
        finally:
            stop.set()
            for client in clients:
                client.join()
    assert failures == []
    assert len(answers) > 100
    for status, body in answers:
        assert status == 200, body
        context = json.loads(body)["context"]
        assert effect_of[context["policy_revision"]] == context["effect"]


def test_decisions_to_stdout_redacted_and_json_log_lines(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "p.yaml").write_text(policy("allow"))
    flags = ["--decision-log-sink", "stdout", "--decision-log-redact", "[subject.properties.email]"]
    with serve(policies, *flags, "--log-format", "json") as (_, port):
        body = call(port)[1]
        decision_id = json.loads(body)["context"]["decision_id"]
    out = (tmp_path / "out.txt").read_text()
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    [logged] = [line for line in lines if line.get("decision_id") == decision_id]
    assert logged["subject"]["id"] == "u-1" and "u1@example.com" not in json.dumps(logged)
    err = (tmp_path / "err.txt").read_text()
    # The command's own first line ("zerotrust serve: listening on ...") is plain text.
    server_lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert any(line["name"] == "uvicorn.error" for line in server_lines)
    assert all({"levelname", "message", "process"} <= set(line) for line in server_lines)
