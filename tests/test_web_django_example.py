"""examples/django_app served as its docstring says: under gunicorn (WSGI: the Django
middleware, @requires, the mixin and the DRF viewset over SQLite) and under uvicorn
(ASGI: the Channels WebSocket), on 127.0.0.1, with real HTTP and WebSocket clients."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_helpers import ROOT

from zerotrust.web import parse_challenges

pytest.importorskip("rest_framework")
pytest.importorskip("channels")
pytest.importorskip("gunicorn")

APP = ROOT / "examples" / "django_app"


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """examples.demo_setup with its demo keys made in a temporary directory."""
    saved = os.environ.get("ZEROTRUST_DEMO_DIR")
    os.environ["ZEROTRUST_DEMO_DIR"] = str(tmp_path_factory.mktemp("django-demo") / "keys")
    try:
        from examples import demo_setup

        demo_setup.build_config()  # the keys exist before the server reads them
        yield demo_setup
    finally:
        if saved is None:
            del os.environ["ZEROTRUST_DEMO_DIR"]
        else:
            os.environ["ZEROTRUST_DEMO_DIR"] = saved


@pytest.fixture(scope="module")
def env(demo: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The servers' environment, and the example's SQLite database made by ``migrate``."""
    where = tmp_path_factory.mktemp("django-example")
    found = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DJANGO_DB": str(where / "db.sqlite3"),
        "ZEROTRUST_DECISION_LOG": str(where / "decisions.jsonl"),
    }
    found.pop("DJANGO_DEBUG", None)
    subprocess.run(
        [sys.executable, str(APP / "manage.py"), "migrate", "--verbosity", "0"],
        env=found,
        check=True,
    )
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _serve(command: list[str], env: dict[str, str], errors: Path) -> Iterator[str]:
    """Run a server on 127.0.0.1 until /health answers; stop it afterwards."""
    port = _free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    with errors.open("wb") as err:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{command[2]} did not start: {errors.read_text()}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """gunicorn, two worker processes sharing the SQLite file."""
    command = [
        *(sys.executable, "-m", "gunicorn", "--chdir", str(APP)),
        *("--bind", "127.0.0.1:{port}", "--workers", "2", "project.wsgi:application"),
    ]
    yield from _serve(command, env, tmp_path_factory.mktemp("gunicorn") / "stderr")


@pytest.fixture(scope="module")
def asgi_server(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """uvicorn serving the ASGI application: Django over HTTP, Channels over WebSocket."""
    command = [
        *(sys.executable, "-m", "uvicorn", "--app-dir", str(APP)),
        *("--host", "127.0.0.1", "--port", "{port}", "project.asgi:application"),
    ]
    yield from _serve(command, env, tmp_path_factory.mktemp("uvicorn") / "stderr")


def _auth(demo: Any, sub: str = "u-anna", roles: str = "agent", amr: str = "pwd,mfa") -> Any:
    tok = demo.demo_token(sub, roles=roles.split(","), department="support", amr=amr.split(","))
    return {"authorization": f"Bearer {tok}"}


def test_served_allow_step_up_deny_and_tokens(server: str, demo: Any) -> None:
    with httpx.Client(base_url=server) as http:
        r = http.get("/customers/c-1001", headers=_auth(demo))
        assert r.status_code == 200
        assert r.json()["card_number"] == "****" and r.json()["ssn"] == "****"
        assert r.headers["x-decision-id"]
        assert int(r.headers["content-length"]) == len(r.content)

        r = http.get("/customers/c-1002", headers=_auth(demo, amr="pwd"))
        assert r.status_code == 401 and r.json()["code"] == "step_up_required"
        [challenge] = parse_challenges(r.headers["www-authenticate"])
        assert challenge.params["error"] == "insufficient_user_authentication"
        r = http.get("/customers/c-1002", headers=_auth(demo))
        assert r.status_code == 200 and r.json()["ssn"] == "****"

        r = http.get("/customers/c-5150", headers=_auth(demo))
        assert r.status_code == 403
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["decision_id"] and "reasons" not in r.json()

        assert http.get("/customers/c-1001").headers["www-authenticate"] == "Bearer"
        forged = _auth(demo)["authorization"][:-4] + "AAAA"
        r = http.get("/customers/c-1001", headers={"authorization": forged})
        assert r.status_code == 401 and r.json()["code"] == "invalid_token"
        assert http.get("/health").json() == {"status": "ok"}  # undeclared: untouched


def test_served_drf_viewset_over_sqlite(server: str, demo: Any) -> None:
    with httpx.Client(base_url=server) as http:
        r = http.get("/api/customers/", headers=_auth(demo))
        assert r.status_code == 200
        # c-1003 is restricted (an unmanaged device is refused), c-5150 is billing's
        assert [c["id"] for c in r.json()] == ["c-1001", "c-1002"]
        assert {c["card_number"] for c in r.json()} == {"****"}

        r = http.get("/api/customers/c-1002/", headers=_auth(demo, amr="pwd"))
        assert r.status_code == 401 and r.json()["code"] == "step_up_required"
        assert "insufficient_user_authentication" in r.headers["www-authenticate"]
        r = http.get("/api/customers/c-1002/", headers=_auth(demo))
        assert r.status_code == 200 and r.json()["ssn"] == "****"
        assert r.json()["name"] == "Bo Lind"

        r = http.get("/api/customers/c-5150/", headers=_auth(demo))
        assert r.status_code == 403 and r.json()["code"] == "access_denied"
        assert http.get("/api/customers/").status_code == 401


def test_served_class_based_export_tokenizes(server: str, demo: Any) -> None:
    attestation = demo.demo_attestation("d-21", "u-max", managed=True, compliant=True)
    headers = {**_auth(demo, "u-max", "manager"), "x-device-attestation": attestation}
    r = httpx.get(f"{server}/departments/support/export", headers=headers)
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    assert records and all(x["email"].startswith("tok_demo1_") for x in records)
    assert b"example.com" not in r.content
    r = httpx.get(f"{server}/departments/support/export", headers=_auth(demo))
    assert r.status_code == 403  # an agent may not export


def test_served_channels_websocket(asgi_server: str, demo: Any) -> None:
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    base = asgi_server.replace("http://", "ws://")
    with connect(f"{base}/ws/customers/c-1001", additional_headers=_auth(demo)) as ws:
        record = json.loads(ws.recv(timeout=5))
    assert record["name"] == "Ada Berg" and record["card_number"] == "****"

    refusals = [
        ("c-5150", _auth(demo), 403, "access_denied"),
        ("c-1002", _auth(demo, amr="pwd"), 401, "step_up_required"),
        ("c-1001", {}, 401, "missing_token"),
    ]
    for customer, headers, status, code in refusals:
        with (
            pytest.raises(InvalidStatus) as refused,
            connect(f"{base}/ws/customers/{customer}", additional_headers=headers),
        ):
            pass
        response = refused.value.response
        assert response.status_code == status
        assert json.loads(response.body)["code"] == code
        if code == "step_up_required":
            [challenge] = parse_challenges(response.headers["www-authenticate"])
            assert challenge.params["error"] == "insufficient_user_authentication"
    assert response.headers["www-authenticate"] == "Bearer"  # the missing token
