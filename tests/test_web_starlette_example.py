"""examples/starlette_app.py (plain Starlette: AuthenticationMiddleware with the
zerotrust backend, ``zt.guard`` on endpoints) through Starlette's TestClient, and end
to end under uvicorn on 127.0.0.1 with real HTTP and a real WebSocket client."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse
from web_helpers import ROOT
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from zerotrust.web import parse_challenges


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@contextlib.contextmanager
def serving(argv: list[str], env: dict[str, str], probe: str, output: Path) -> Iterator[None]:
    """Run a server process from the repository root until ``probe`` answers; stop it
    after. Its output goes to ``output``, for the test to read."""
    with output.open("wb") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(probe, timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    proc.kill()
                    proc.wait()
                    pytest.fail(f"{argv[2]} did not start:\n{output.read_text()}")
                time.sleep(0.1)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def demo_env(tmp: Path) -> dict[str, str]:
    """The demo's environment for a server process: keys and decision log in ``tmp``."""
    return {
        **os.environ,
        "ZEROTRUST_DEMO_DIR": str(tmp / "keys"),
        "ZEROTRUST_DECISION_LOG": str(tmp / "decisions.jsonl"),
    }


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("ZEROTRUST_DEMO_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("ZEROTRUST_DECISION_LOG", str(tmp_path / "decisions.jsonl"))
    for name in ("examples.starlette_app", "examples.demo_setup"):
        sys.modules.pop(name, None)
    module = importlib.import_module("examples.starlette_app")
    yield module
    module.zt.gate.pdp._log.close()  # the JSON-lines decision log the demo opened
    for name in ("examples.starlette_app", "examples.demo_setup"):
        sys.modules.pop(name, None)


def _demo() -> Any:
    return sys.modules["examples.demo_setup"]


def _auth(demo: Any, sub: str = "u-anna", roles: str = "agent", amr: str = "pwd,mfa") -> Any:
    tok = demo.demo_token(sub, roles=roles.split(","), department="support", amr=amr.split(","))
    return {"authorization": f"Bearer {tok}"}


def _decisions(log: Path) -> dict[str, dict[str, Any]]:
    entries = (json.loads(line) for line in log.read_text().splitlines())
    return {e["decision_id"]: e for e in entries}


def test_allow_masks_and_request_user_is_the_verified_subject(
    example: ModuleType, tmp_path: Path
) -> None:
    client = TestClient(example.app)
    r = client.get("/customers/c-1001", headers=_auth(_demo()))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["card_number"] == "****" and body["ssn"] == "****"
    assert body["name"] == "Ada Berg" and body["read_by"] == "u-anna"
    entry = _decisions(tmp_path / "decisions.jsonl")[r.headers["x-decision-id"]]
    assert entry["effect"] == "allow"
    assert entry["extra"]["http"]["route"] == "GET /customers/{id}"
    me = client.get("/me", headers=_auth(_demo()))
    assert me.json()["id"] == "u-anna" and me.json()["device"]["managed"] is False


def test_deny_step_up_then_mfa(example: ModuleType) -> None:
    client = TestClient(example.app)
    r = client.get("/customers/c-5150", headers=_auth(_demo()))
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["code"] == "access_denied" and r.json()["decision_id"]
    assert "reasons" not in r.json()  # debug off: clients learn nothing of the policies

    r = client.get("/customers/c-1002", headers=_auth(_demo(), amr="pwd"))
    assert r.status_code == 401
    [challenge] = parse_challenges(r.headers["www-authenticate"])
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert challenge.params["acr_values"] == "urn:example:loa:2"
    r = client.get("/customers/c-1002", headers=_auth(_demo(), amr="pwd,mfa"))
    assert r.status_code == 200 and r.json()["ssn"] == "****"


def test_missing_and_forged_tokens(example: ModuleType) -> None:
    client = TestClient(example.app)
    r = client.get("/customers/c-1001")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert r.json()["code"] == "invalid_token"
    forged = _auth(_demo())["authorization"][:-4] + "AAAA"
    r = client.get("/customers/c-1001", headers={"authorization": forged})
    assert r.status_code == 401
    assert parse_challenges(r.headers["www-authenticate"])[0].params["error"] == "invalid_token"
    assert "4111111111111111" not in r.text
    # Starlette's own @requires sees no user without a valid token
    assert client.get("/me", headers={"authorization": forged}).status_code == 403


def test_undeclared_route_and_export_tokenizes(example: ModuleType) -> None:
    client = TestClient(example.app)
    assert client.get("/health").json() == {"status": "ok"}
    demo = _demo()
    attestation = demo.demo_attestation("d-21", "u-max", managed=True, compliant=True)
    headers = {**_auth(demo, "u-max", "manager"), "x-device-attestation": attestation}
    r = client.get("/departments/support/export", headers=headers)
    assert r.status_code == 200, r.text
    assert all(x["email"].startswith("tok_demo1_") for x in r.json()["records"])
    assert "example.com" not in r.text
    # the same export without the attestation: a device the company does not manage
    r = client.get("/departments/support/export", headers=_auth(demo, "u-max", "manager"))
    assert r.status_code == 403


def test_needs_no_fastapi(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['fastapi'] = None\n"  # import fastapi now fails
        "from starlette.testclient import TestClient\n"
        "from examples import starlette_app\n"
        "r = TestClient(starlette_app.app).get('/customers/c-1001')\n"
        "assert r.status_code == 401, r.status_code\n"
        "assert 'fastapi' not in sys.modules or sys.modules['fastapi'] is None\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        cwd=ROOT,
        env={**demo_env(tmp_path), "PYTHONPATH": os.pathsep.join(sys.path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def test_websocket_refused_and_allowed(example: ModuleType) -> None:
    client = TestClient(example.app)
    with client.websocket_connect("/customers/c-1001/live", headers=_auth(_demo())) as ws:
        change = ws.receive_json()
    assert change["id"] == "c-1001" and change["card_number"] == "****"
    for headers, status in (({}, 401), (_auth(_demo()), 403)):
        path = "/customers/c-5150/live" if headers else "/customers/c-1001/live"
        with pytest.raises(WebSocketDenialResponse) as refused:
            client.websocket_connect(path, headers=headers).__enter__()
        assert refused.value.status_code == status


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("starlette-e2e")
    env = demo_env(tmp)
    saved = os.environ.get("ZEROTRUST_DEMO_DIR")
    os.environ["ZEROTRUST_DEMO_DIR"] = env["ZEROTRUST_DEMO_DIR"]
    try:
        sys.modules.pop("examples.demo_setup", None)
        demo = importlib.import_module("examples.demo_setup")
        demo.build_config()  # the demo keys, made before the server loads them
        port = free_port()
        argv = [
            sys.executable,
            "-m",
            "uvicorn",
            "examples.starlette_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-proxy-headers",
        ]
        base = f"http://127.0.0.1:{port}"
        output = tmp / "uvicorn.log"
        with serving(argv, env, f"{base}/health", output):
            yield {"base": base, "ws": f"ws://127.0.0.1:{port}", "demo": demo, "output": output}
    finally:
        sys.modules.pop("examples.demo_setup", None)
        if saved is None:
            del os.environ["ZEROTRUST_DEMO_DIR"]
        else:
            os.environ["ZEROTRUST_DEMO_DIR"] = saved


def test_under_uvicorn(server: dict[str, Any]) -> None:
    demo = server["demo"]
    with httpx.Client(base_url=server["base"]) as http:
        r = http.get("/customers/c-1001", headers=_auth(demo))
        assert r.status_code == 200 and r.json()["card_number"] == "****"
        assert int(r.headers["content-length"]) == len(r.content)
        r = http.get("/customers/c-5150", headers=_auth(demo))
        assert r.status_code == 403 and r.json()["code"] == "access_denied"
        r = http.get("/customers/c-1002", headers=_auth(demo, amr="pwd"))
        assert r.status_code == 401
        assert "insufficient_user_authentication" in r.headers["www-authenticate"]
        assert http.get("/customers/c-1002", headers=_auth(demo)).status_code == 200
        assert http.get("/customers/c-1001").status_code == 401
        assert http.get("/health").json() == {"status": "ok"}

    live = f"{server['ws']}/customers/c-1001/live"
    with connect(live, additional_headers=_auth(demo), open_timeout=10) as ws:
        change = json.loads(ws.recv(timeout=10))
    assert change["card_number"] == "****"
    with pytest.raises(InvalidStatus) as refused:
        connect(live, open_timeout=10).close()
    assert refused.value.response.status_code == 401
    forbidden = f"{server['ws']}/customers/c-5150/live"
    with pytest.raises(InvalidStatus) as refused:
        connect(forbidden, additional_headers=_auth(demo), open_timeout=10).close()
    assert refused.value.response.status_code == 403
    assert json.loads(refused.value.response.body)["code"] == "access_denied"


def test_a_refused_websocket_is_not_an_error_in_the_server_log(server: dict[str, Any]) -> None:
    """uvicorn's websockets-sansio logs ``ASGI callable returned without completing
    handshake.`` at ERROR unless told the denial is complete: the guard's refusal, sent
    through Starlette's exception handling, must tell it as the middleware does."""
    live = f"{server['ws']}/customers/c-1001/live"
    for _ in range(3):
        with pytest.raises(InvalidStatus):
            connect(live, open_timeout=10).close()
    assert httpx.get(f"{server['base']}/health").status_code == 200  # the server is alive
    time.sleep(0.2)
    assert "ERROR" not in server["output"].read_text()
