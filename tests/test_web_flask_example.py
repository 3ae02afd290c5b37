"""examples/flask_app.py (the Flask extension, an app factory and a blueprint) through
Flask's test client, and end to end under gunicorn on 127.0.0.1."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from test_web_starlette_example import free_port, serving

from zerotrust.web import parse_challenges


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The example's module and demo keys, made in a temporary directory."""
    saved = os.environ.get("ZEROTRUST_DEMO_DIR")
    os.environ["ZEROTRUST_DEMO_DIR"] = str(tmp_path_factory.mktemp("flask-demo") / "keys")
    try:
        from examples import demo_setup, flask_app

        yield flask_app, demo_setup
    finally:
        if saved is None:
            del os.environ["ZEROTRUST_DEMO_DIR"]
        else:
            os.environ["ZEROTRUST_DEMO_DIR"] = saved


def _auth(demo: Any, sub: str = "u-anna", roles: str = "agent", amr: str = "pwd,mfa") -> Any:
    tok = demo[1].demo_token(sub, roles=roles.split(","), department="support", amr=amr.split(","))
    return {"authorization": f"Bearer {tok}"}


@pytest.fixture(scope="module")
def client(demo: Any) -> Any:
    return demo[0].create_app().test_client()


def test_example_masks_and_names_the_decision(client: Any, demo: Any) -> None:
    r = client.get("/customers/c-1001", headers=_auth(demo))
    assert r.status_code == 200
    assert r.json["card_number"] == "****" and r.json["ssn"] == "****"
    assert r.headers["x-decision-id"]


def test_example_step_up_deny_and_missing_token(client: Any, demo: Any) -> None:
    r = client.get("/customers/c-1002", headers=_auth(demo, amr="pwd"))
    assert r.status_code == 401
    [challenge] = parse_challenges(r.headers["www-authenticate"])
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert client.get("/customers/c-1002", headers=_auth(demo)).status_code == 200
    r = client.get("/customers/c-5150", headers=_auth(demo))
    assert r.status_code == 403 and r.mimetype == "application/problem+json"
    assert client.get("/customers/c-1001").headers["www-authenticate"] == "Bearer"
    assert client.get("/health").json == {"status": "ok"}  # undeclared: untouched


def test_example_export_tokenizes(client: Any, demo: Any) -> None:
    attestation = demo[1].demo_attestation("d-21", "u-max", managed=True, compliant=True)
    headers = {**_auth(demo, "u-max", "manager"), "x-device-attestation": attestation}
    r = client.get("/departments/support/export", headers=headers)
    assert r.status_code == 200, r.data
    records = r.json["records"]
    assert records and all(x["email"].startswith("tok_demo1_") for x in records)
    assert b"example.com" not in r.data


@pytest.fixture(scope="module")
def server(demo: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """The example under gunicorn (a real WSGI server, one worker) on 127.0.0.1."""
    demo[1].build_config()  # the demo keys, made before the server loads them
    tmp = tmp_path_factory.mktemp("flask-gunicorn")
    log = tmp / "decisions.jsonl"
    env = {
        **os.environ,
        "ZEROTRUST_DEMO_DIR": os.environ["ZEROTRUST_DEMO_DIR"],
        "ZEROTRUST_DECISION_LOG": str(log),
    }
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        "1",
        "--log-level",
        "warning",
        "examples.flask_app:create_app()",
    ]
    base = f"http://127.0.0.1:{port}"
    with serving(argv, env, f"{base}/health", tmp / "gunicorn.log"):
        yield {"base": base, "log": log}


def _logged(log: Path, decision_id: str) -> dict[str, Any]:
    for line in log.read_text().splitlines():
        entry: dict[str, Any] = json.loads(line)
        if entry["decision_id"] == decision_id:
            return entry
    raise AssertionError(f"decision {decision_id} not in the log")


def test_under_gunicorn(server: dict[str, Any], demo: Any) -> None:
    with httpx.Client(base_url=server["base"]) as http:
        r = http.get("/customers/c-1001", headers=_auth(demo))
        assert r.status_code == 200 and r.json()["card_number"] == "****"
        assert r.json()["ssn"] == "****" and r.json()["name"] == "Ada Berg"
        assert int(r.headers["content-length"]) == len(r.content)
        entry = _logged(server["log"], r.headers["x-decision-id"])
        assert entry["effect"] == "allow"
        assert entry["extra"]["http"]["route"] == "GET /customers/<customer_id>"

        r = http.get("/customers/c-1002", headers=_auth(demo, amr="pwd"))
        assert r.status_code == 401
        [challenge] = parse_challenges(r.headers["www-authenticate"])
        assert challenge.params["error"] == "insufficient_user_authentication"
        assert challenge.params["acr_values"] == "urn:example:loa:2"
        assert r.json()["code"] == "step_up_required" and r.json()["decision_id"]
        assert "5500000000000004" not in r.text
        r = http.get("/customers/c-1002", headers=_auth(demo, amr="pwd,mfa"))
        assert r.status_code == 200 and r.json()["card_number"] == "****"

        r = http.get("/customers/c-5150", headers=_auth(demo))
        assert r.status_code == 403
        assert r.headers["content-type"] == "application/problem+json"
        assert _logged(server["log"], r.json()["decision_id"])["effect"] == "deny"

        r = http.get("/customers/c-1001")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["code"] == "invalid_token"

        forged = _auth(demo)["authorization"][:-4] + "AAAA"
        r = http.get("/customers/c-1001", headers={"authorization": forged})
        assert r.status_code == 401
        assert parse_challenges(r.headers["www-authenticate"])[0].params["error"] == (
            "invalid_token"
        )
        assert http.get("/health").json() == {"status": "ok"}
