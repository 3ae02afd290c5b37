"""``schema_validation`` in ``zerotrust serve`` (file, environment, flag) and a request
that does not match the attribute schemas: 400 naming the field with ``enforce``, from
the server and from a web integration alike."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient
from web_helpers import assert_invalid_request, bearer, resolve, schema_pdp, web_config

from zerotrust.cli import main
from zerotrust.server import ServerConfig, ServerConfigError
from zerotrust.server.settings import resolve as resolve_config
from zerotrust.server.workers import ServeOptions, build
from zerotrust.web.asgi import ZeroTrustMiddleware

ROOT = Path(__file__).resolve().parents[1]
POLICY = "policy: documents\nrules:\n  - id: everyone\n    effect: allow\n"
SCHEMA = """\
resources:
  document:
    properties:
      owner: {type: string}
      pages: {type: integer}
    required: [owner]
"""
ALICE = {"type": "user", "id": "alice"}
READ = {"name": "read"}


def item(**properties: Any) -> dict[str, Any]:
    return {
        "subject": ALICE,
        "action": READ,
        "resource": {"type": "document", "id": "d-1", "properties": properties},
    }


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    folder.mkdir()
    (folder / "documents.yaml").write_text(POLICY, encoding="utf-8")
    (folder / "documents.schema.yaml").write_text(SCHEMA, encoding="utf-8")
    return folder


def served(policies: Path, **options: Any) -> TestClient:
    """The app ``zerotrust serve`` would run for ``options``, through the test client."""
    built = build(ServeOptions(str(policies), "127.0.0.1", insecure_local=True, **options))
    return TestClient(built.server.config.app, client=("127.0.0.1", 50000))


# --- where the setting comes from -------------------------------------------------------


def test_the_default_is_report_as_the_library() -> None:
    assert ServerConfig(insecure_local=True).schema_validation == "report"


@pytest.mark.parametrize("mode", ["off", "report", "enforce"])
def test_the_file_the_environment_and_the_flag_each_set_it(tmp_path: Path, mode: str) -> None:
    file = tmp_path / "server.yaml"
    file.write_text(f"insecure_local: true\nschema_validation: '{mode}'\n", encoding="utf-8")
    assert resolve_config(file, environ={}).schema_validation == mode
    environ = {"ZEROTRUST_SCHEMA_VALIDATION": mode}
    assert resolve_config(None, environ=environ, insecure_local=True).schema_validation == mode
    flags = {"schema_validation": mode}
    assert resolve_config(None, environ={}, flags=flags, insecure_local=True).schema_validation == (
        mode
    )


def test_the_flag_wins_over_the_environment_which_wins_over_the_file(tmp_path: Path) -> None:
    file = tmp_path / "server.yaml"
    file.write_text("insecure_local: true\nschema_validation: 'off'\n", encoding="utf-8")
    environ = {"ZEROTRUST_SCHEMA_VALIDATION": "report"}
    assert resolve_config(file, environ=environ).schema_validation == "report"
    flags = {"schema_validation": "enforce"}
    assert resolve_config(file, environ=environ, flags=flags).schema_validation == "enforce"


def test_an_unknown_mode_is_refused_naming_the_key_and_the_choices(tmp_path: Path) -> None:
    file = tmp_path / "server.yaml"
    file.write_text("insecure_local: true\nschema_validation: strict\n", encoding="utf-8")
    with pytest.raises(ServerConfigError) as caught:
        resolve_config(file, environ={})
    assert caught.value.problems == (
        "schema_validation: must be one of off, report, enforce, not 'strict'",
    )


def run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def test_the_cli_reads_the_flag_and_the_variable(policies: Path) -> None:
    """Through the real console script: ``--print-config`` shows what would be served."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZEROTRUST_")}
    env["PYTHONPATH"] = str(ROOT)
    command = [sys.executable, "-m", "zerotrust", "serve", "--policies", str(policies)]
    command += ["--insecure-local", "--print-config"]
    by_flag = run([*command, "--schema-validation", "enforce"], env)
    assert by_flag.returncode == 0, by_flag.stderr
    assert "schema_validation: enforce" in by_flag.stdout.splitlines()
    env["ZEROTRUST_SCHEMA_VALIDATION"] = "off"
    by_env = run(command, env)
    assert by_env.returncode == 0, by_env.stderr
    assert "schema_validation: 'off'" in by_env.stdout.splitlines()
    refused = run([*command, "--schema-validation", "strict"], env)
    assert refused.returncode == 2
    assert refused.stderr == (
        "zerotrust serve: --schema-validation (schema_validation): "
        "must be one of off, report, enforce, not 'strict'\n"
    )


def test_main_prints_it(policies: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["serve", "--policies", str(policies), "--insecure-local", "--print-config"]
    assert main([*args, "--schema-validation", "enforce"]) == 0
    assert "schema_validation: enforce" in capsys.readouterr().out.splitlines()


# --- what the server answers ------------------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"flags": (("schema_validation", "enforce"),), "environ": ()},
        {"environ": (("ZEROTRUST_SCHEMA_VALIDATION", "enforce"),)},
    ],
    ids=["flag", "environment"],
)
def test_enforce_answers_400_naming_the_field(policies: Path, options: dict[str, Any]) -> None:
    with served(policies, **options) as client:
        good = client.post("/access/v1/evaluation", json=item(owner="alice", pages=3))
        assert good.status_code == 200 and good.json()["decision"] is True
        bad = client.post("/access/v1/evaluation", json=item(owner="alice", pages="3"))
        assert bad.status_code == 400
        assert bad.text == "resource.properties.pages: expected an integer"
        missing = client.post("/access/v1/evaluation", json=item(pages=3))
        assert missing.status_code == 400
        assert missing.text == "resource.properties.owner: is required and missing"


def test_enforce_from_the_file(policies: Path, tmp_path: Path) -> None:
    file = tmp_path / "server.yaml"
    file.write_text("insecure_local: true\nschema_validation: enforce\n", encoding="utf-8")
    with served(policies, config_file=str(file), environ=()) as client:
        bad = client.post("/access/v1/evaluation", json=item(owner=7))
    assert bad.status_code == 400
    assert bad.text == "resource.properties.owner: expected a string"


def test_a_batch_answers_each_bad_item_as_an_invalid_item(policies: Path) -> None:
    """As an item the protocol refuses: that item is a 400 error, the others decided."""
    flags = (("schema_validation", "enforce"),)
    body = {"evaluations": [item(owner="a"), item(owner="a", pages=1.5), item(owner="b")]}
    with served(policies, flags=flags, environ=()) as client:
        r = client.post("/access/v1/evaluations", json=body)
        invalid = client.post("/access/v1/evaluations", json={"evaluations": [item(), []]})
    assert r.status_code == 200, r.text
    first, bad, last = r.json()["evaluations"]
    assert first["decision"] is True and last["decision"] is True
    message = "resource.properties.pages: expected an integer"
    assert bad == {"decision": False, "context": {"error": {"status": 400, "message": message}}}
    # the same shape as an item the protocol itself refuses
    protocol_bad = invalid.json()["evaluations"][1]
    assert protocol_bad["context"]["error"]["status"] == 400


@pytest.mark.parametrize("mode", [[], [("schema_validation", "report")]], ids=["default", "report"])
def test_report_decides_and_lists_the_mismatch(policies: Path, mode: list[Any]) -> None:
    with served(policies, flags=tuple(mode), environ=()) as client:
        r = client.post("/access/v1/evaluation", json=item(owner="alice", pages="3"))
    assert r.status_code == 200 and r.json()["decision"] is True
    errors = r.json()["context"]["errors"]
    assert {"rule": "resource.properties.pages", "kind": "schema"}.items() <= errors[0].items()


def test_off_does_not_check(policies: Path) -> None:
    with served(policies, flags=(("schema_validation", "off"),), environ=()) as client:
        r = client.post("/access/v1/evaluation", json=item(pages="3"))
    assert r.status_code == 200 and r.json()["decision"] is True
    assert "errors" not in r.json().get("context", {})


# --- a web integration ------------------------------------------------------------------


async def customer(request: Request) -> Response:
    return PlainTextResponse("the record")


def web_app(mode: str) -> Starlette:
    pdp = schema_pdp(mode)
    app = Starlette(routes=[Route("/customers/{id}", customer)])
    app.add_middleware(ZeroTrustMiddleware, pdp=pdp, resolve=resolve, config=web_config())
    return app


def test_a_web_integration_answers_400_naming_the_field_with_enforce() -> None:
    """The route's properties lack the required ``region``: refused before the app runs."""
    with TestClient(web_app("enforce")) as client:
        r = client.get("/customers/c-1001", headers=bearer())
    assert_invalid_request(r.status_code, r.headers["content-type"], r.json())
    assert "the record" not in r.text
