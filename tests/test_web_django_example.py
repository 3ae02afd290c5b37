"""examples/django_app (the Django middleware, @requires and the mixin) served by
``manage.py runserver`` on 127.0.0.1, as its docstring says to run it."""

from __future__ import annotations

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

pytest.importorskip("django")

MANAGE = ROOT / "examples" / "django_app" / "manage.py"


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


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(demo: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "ZEROTRUST_DECISION_LOG": str(tmp_path_factory.mktemp("django-log") / "decisions.jsonl"),
    }
    env.pop("DJANGO_DEBUG", None)
    errors = Path(tmp_path_factory.mktemp("django-err") / "stderr")
    with errors.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(MANAGE), "runserver", "--noreload", f"127.0.0.1:{port}"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{base}/health", timeout=1)
                break
            except httpx.TransportError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"runserver did not start: {errors.read_text()}")
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
