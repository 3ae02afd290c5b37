"""examples/flask_app.py (the Flask extension, an app factory and a blueprint) through
Flask's test client, and end to end under a WSGI server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest

from zerotrust.web import parse_challenges


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


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
def server(demo: Any) -> Iterator[str]:
    """The example under the standard library's WSGI server on 127.0.0.1."""
    httpd: WSGIServer = make_server("127.0.0.1", 0, demo[0].create_app(), handler_class=_Quiet)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_port}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


def test_served_allow_step_up_deny_and_invalid_token(server: str, demo: Any) -> None:
    with httpx.Client(base_url=server) as http:
        r = http.get("/customers/c-1001", headers=_auth(demo))
        assert r.status_code == 200 and r.json()["card_number"] == "****"
        assert int(r.headers["content-length"]) == len(r.content)

        r = http.get("/customers/c-1002", headers=_auth(demo, amr="pwd"))
        assert r.status_code == 401
        [challenge] = parse_challenges(r.headers["www-authenticate"])
        assert challenge.params["acr_values"] == "urn:example:loa:2"
        assert r.json()["code"] == "step_up_required" and r.json()["decision_id"]

        r = http.get("/customers/c-5150", headers=_auth(demo))
        assert r.status_code == 403
        assert r.headers["content-type"] == "application/problem+json"

        forged = _auth(demo)["authorization"][:-4] + "AAAA"
        r = http.get("/customers/c-1001", headers={"authorization": forged})
        assert r.status_code == 401
        assert parse_challenges(r.headers["www-authenticate"])[0].params["error"] == (
            "invalid_token"
        )
        assert json.loads(r.content)["code"] == "invalid_token"
