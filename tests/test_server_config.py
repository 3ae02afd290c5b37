"""Server configuration, the ``zerotrust serve`` command and its safety refusals."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from starlette.testclient import TestClient
from strategies import bearer_secret_candidates

from zerotrust import PolicyDecisionPoint
from zerotrust.cli import main
from zerotrust.server import ServerConfig, ServerConfigError, create_app, load_config
from zerotrust.server.entities import load_entities
from zerotrust.server.runner import ListenError, address, build_config, is_loopback_host, listen

ROOT = Path(__file__).resolve().parents[1]
SECRET = "config-secret-0123456789"
ALLOW_ALL = "policy: everything\nrules:\n  - {id: allow-all, effect: allow}\n"
REQUEST = {
    "subject": {"type": "user", "id": "alice"},
    "action": {"name": "read"},
    "resource": {"type": "record", "id": "r1"},
}


def test_defaults_are_safe() -> None:
    config = ServerConfig(bearer_secrets=(SECRET,))
    assert config.insecure_local is False
    assert config.include_reasons is True
    assert config.max_body_bytes == 1024 * 1024
    assert config.request_timeout == 5.0
    assert config.max_requests_in_flight == 256
    assert SECRET not in repr(config)


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ServerConfigError) as info:
        ServerConfig(
            bearer_secrets=("short", "has a space in it!!"),
            max_body_bytes=0,
            request_timeout=float("nan"),
            max_evaluations=True,
            max_requests_in_flight=0,
            base_url="https://pdp.example.com/?tenant=1",
        )
    problems = info.value.problems
    assert len(problems) == 7
    assert "max_requests_in_flight: must be a positive whole number, not 0" in problems
    assert any("whitespace" in p for p in problems)
    assert isinstance(info.value, ValueError)


def test_load_config_resolves_paths_and_reads_a_secrets_file(tmp_path: Path) -> None:
    (tmp_path / "secrets.txt").write_text(f"{SECRET}\n\n{SECRET}-2\n", encoding="utf-8")
    file = tmp_path / "server.yaml"
    file.write_text(
        "bearer_secrets_file: secrets.txt\n"
        "include_reasons: false\n"
        "request_timeout_seconds: 2.5\n"
        "max_requests_in_flight: 64\n"
        "entities: entities.yaml\n"
        "decision_log: logs/decisions.jsonl\n"
        "base_url: https://pdp.example.com\n",
        encoding="utf-8",
    )
    config = load_config(file)
    assert config.bearer_secrets == (SECRET, f"{SECRET}-2")
    assert config.include_reasons is False
    assert config.request_timeout == 2.5
    assert config.max_requests_in_flight == 64
    assert config.entities_file == str(tmp_path / "entities.yaml")
    assert config.decision_log == str(tmp_path / "logs" / "decisions.jsonl")
    assert load_config(file, include_reasons=True).include_reasons is True


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bearer_secrets: [x]\nprot: 80\n", r"prot: unknown setting \(did you mean 'port'\?\)"),
        ("bearer_secrets: 12\n", "bearer_secrets: must be a non-empty string or a list of"),
        ("- a\n", "mapping of settings"),
        ("bearer_secrets: [\n", r"server.yaml:2:1: invalid YAML"),
        (
            "bearer_secrets_file: nowhere.txt\n",
            "bearer_secrets_file: cannot read .*nowhere.txt: No such file",
        ),
        (
            f"bearer_secrets: [{SECRET}]\nentities: 3\n",
            "entities: must be a non-empty string, not 3",
        ),
        (
            "include_reasons: maybe\ninsecure_local: true\n",
            "include_reasons: must be true or false, not 'maybe'",
        ),
    ],
)
def test_load_config_refuses_bad_files(tmp_path: Path, text: str, message: str) -> None:
    file = tmp_path / "server.yaml"
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ServerConfigError, match=message):
        load_config(file)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("server.yaml", "a: " + "[" * 30_000 + "]" * 30_000, "nested deeper than 64 levels"),
        ("server.json", '{"a": ' + "[" * 30_000 + "]" * 30_000 + "}", "nested deeper than 64"),
        (
            "server.yaml",
            'big: &a "' + "x" * 100_000 + '"\nlist: [' + ", ".join(["*a"] * 200) + "]\n",
            "alias",
        ),
        ("server.yaml", "a: 1\n---\nb: 2\n", "one YAML document"),
    ],
    ids=["deep-yaml", "deep-json", "alias-bomb", "two-documents"],
)
def test_hostile_config_file_is_one_line_error_not_a_crash(
    tmp_path: Path, name: str, text: str, message: str
) -> None:
    """A config or entities file is read with the policy loader's limits: deep nesting and
    alias bombs are refused with a position, never a RecursionError or a memory blow-up."""
    file = tmp_path / name
    file.write_text(text, encoding="utf-8")
    with pytest.raises(ServerConfigError, match=message) as info:
        load_config(file)
    assert "\n" not in str(info.value)
    with pytest.raises(ServerConfigError, match=message):
        load_entities(file)


def test_a_single_secret_string_and_an_empty_file(tmp_path: Path) -> None:
    file = tmp_path / "server.json"
    file.write_text(f'{{"bearer_secrets": "{SECRET}"}}', encoding="utf-8")
    assert load_config(file).bearer_secrets == (SECRET,)
    (tmp_path / "empty.yaml").write_text("", encoding="utf-8")
    with pytest.raises(ServerConfigError, match="no bearer secret"):
        load_config(tmp_path / "empty.yaml")
    with pytest.raises(ServerConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.0.0.1", False),
        ("example.com", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


def test_insecure_local_refuses_to_bind_a_public_address() -> None:
    assert build_config(None, host="127.0.0.1", insecure_local=True).insecure_local
    with pytest.raises(ServerConfigError, match="loopback only"):
        build_config(None, host="0.0.0.0", insecure_local=True)
    with pytest.raises(ServerConfigError, match="no bearer secret"):
        build_config(None, host="127.0.0.1")


def serve_args(*extra: str) -> list[str]:
    return ["serve", "--policies", str(ROOT / "examples" / "authzen-certification"), *extra]


def test_serve_without_a_secret_refuses_to_start(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(serve_args()) == 2
    assert "no bearer secret" in capsys.readouterr().err


def test_serve_insecure_local_on_a_public_host_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(serve_args("--insecure-local", "--host", "0.0.0.0")) == 2
    assert "loopback only" in capsys.readouterr().err


def test_serve_reports_bad_entities_and_policies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    entities = tmp_path / "entities.yaml"
    entities.write_text("subjects: [a]\n", encoding="utf-8")
    assert main(serve_args("--insecure-local", "--entities", str(entities))) == 2
    assert "must map a type" in capsys.readouterr().err
    assert main(["serve", "--insecure-local", "--policies", str(tmp_path / "none")]) == 1


def test_import_zerotrust_does_not_import_the_server() -> None:
    code = "import sys, zerotrust, zerotrust.cli; print('zerotrust.server' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- what reaches a header or a socket is checked where it enters ------------------------


def test_non_ascii_bearer_secret_is_refused_at_load(tmp_path: Path) -> None:
    """No HTTP client sends "ä" the way the server would compare it: a UTF-8 client got
    401 with the secret it was given. The message never shows the secret."""
    file = tmp_path / "server.yaml"
    file.write_text("bearer_secrets: [geheimnis-äöü-0123456789]\n", encoding="utf-8")
    with pytest.raises(ServerConfigError, match="must be an RFC 6750 token") as info:
        load_config(file)
    assert "geheimnis" not in str(info.value) and "ä" not in str(info.value)


@settings(max_examples=200, deadline=None)
@given(secret=bearer_secret_candidates())
def test_a_secret_loads_exactly_when_a_client_can_send_it(secret: str) -> None:
    """RFC 6750 section 2.1 b64token, at least 16 characters: what loads authenticates a
    real HTTP client sending it as is; what does not is refused without being shown."""
    usable = len(secret) >= 16 and re.fullmatch(r"[A-Za-z0-9\-._~+/]+=*", secret) is not None
    try:
        config = ServerConfig(bearer_secrets=(secret,))
    except ServerConfigError as exc:
        assert not usable
        (problem,) = exc.problems  # one fixed text: the secret is never in it
        assert problem.startswith("bearer_secrets[0]: must be ")
        assert problem.endswith(("at least 16 characters", "no whitespace or other characters"))
        return
    assert usable
    app = create_app(PolicyDecisionPoint.from_texts({"p.yaml": ALLOW_ALL}), config=config)
    with TestClient(app) as client:
        answer = client.post(
            "/access/v1/evaluation",
            json=REQUEST,
            headers={"Authorization": f"Bearer {secret}"},
        )
    assert answer.status_code == 200 and answer.json()["decision"] is True


@pytest.mark.parametrize(
    "line",
    [
        "request_timeout_seconds: 1.0e308",
        "request_timeout_seconds: 5e0",
        "max_body_bytes: 1e6",
        "max_connections: 1E3",
    ],
)
def test_exponent_number_yaml_readers_disagree_on_is_refused_where_written(
    tmp_path: Path, line: str
) -> None:
    """``1e6`` is text to YAML 1.1 and a number to YAML 1.2 and JSON: the reader refuses
    it at its position, with what to write instead, rather than a bare "not a number"."""
    file = tmp_path / "server.yaml"
    file.write_text(f"bearer_secrets: [{SECRET}]\n{line}\n", encoding="utf-8")
    with pytest.raises(ServerConfigError, match=r"server\.yaml:2:\d+: .* is text in YAML 1\.1"):
        load_config(file)


@pytest.mark.parametrize("timeout", [1e308, 3601, 0, -1, float("inf")])
def test_request_timeout_that_protects_nothing_is_refused(tmp_path: Path, timeout: float) -> None:
    """A deadline of 1e308 s (JSON reads it as a number) is no deadline: at most an hour."""
    file = tmp_path / "server.json"
    file.write_text(
        json.dumps({"bearer_secrets": [SECRET], "request_timeout_seconds": timeout}),
        encoding="utf-8",
    )
    if timeout == float("inf"):
        with pytest.raises(ServerConfigError, match="NaN and infinity are not allowed"):
            load_config(file)
        return
    with pytest.raises(ServerConfigError, match="above 0 and at most 3600"):
        load_config(file)
    assert load_config(file, request_timeout=3600).request_timeout == 3600


@pytest.mark.parametrize("host", ["[::1", "::1]", "[localhost]", "[127.0.0.1]", "[[::1]]"])
def test_host_with_stray_brackets_is_refused_as_written(host: str) -> None:
    with pytest.raises(ListenError) as info:
        listen(host, 0)
    message = str(info.value)
    assert message.startswith(f"cannot listen on {host!r}: brackets go around an IPv6")
    assert "[[" not in message.replace(repr(host), "")


def test_bracketed_ipv6_host_is_listened_on() -> None:
    try:
        sockets = listen("[::1]", 0)
    except ListenError as exc:  # a machine without IPv6 loopback
        pytest.skip(str(exc))
    for sock in sockets:
        sock.close()
    assert address("[::1]", 8080) == "[::1]:8080" == address("::1", 8080)


def test_decision_log_that_cannot_be_opened_is_named_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "server.yaml"
    config.write_text(f"bearer_secrets: [{SECRET}]\ndecision_log: {tmp_path}\n")
    assert main(serve_args("--config", str(config))) == 2
    err = capsys.readouterr().err
    assert err.count("decision log") == 1 and err.count(str(tmp_path)) == 1, err
    assert err.startswith(f"zerotrust serve: cannot open decision log {tmp_path}: ")
