"""End to end: examples/fastapi_app.py under uvicorn on 127.0.0.1, called with httpx."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from web_helpers import ROOT, WATERMARK_POLICY

from zerotrust.web import parse_challenges


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("e2e")
    policies = tmp / "policies"
    policies.mkdir()
    for path in (ROOT / "policies").glob("*.yaml"):
        if not path.name.endswith("_test.yaml"):
            shutil.copy(path, policies / path.name)
    (policies / "watermark.yaml").write_text(WATERMARK_POLICY)
    env = {
        **os.environ,
        "ZEROTRUST_DEMO_DIR": str(tmp / "keys"),
        "ZEROTRUST_POLICIES": str(policies),
        "ZEROTRUST_DECISION_LOG": str(tmp / "decisions.jsonl"),
    }
    # Mint with the same demo keys the server will load (created here, first).
    os.environ["ZEROTRUST_DEMO_DIR"] = env["ZEROTRUST_DEMO_DIR"]
    try:
        from examples import demo_setup

        demo_setup.build_config()
        port = _free_port()
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "examples.fastapi_app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--log-level",
                "warning",
                # uvicorn itself believes X-Forwarded-For from 127.0.0.1 unless told not to;
                # the middleware's trusted_proxies must be the only place proxies are trusted.
                "--no-proxy-headers",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    httpx.get(f"{base}/customers/c-1001", timeout=1)
                    break
                except httpx.TransportError:
                    if proc.poll() is not None or time.monotonic() > deadline:
                        out = proc.stdout.read().decode() if proc.stdout else ""
                        pytest.fail(f"uvicorn did not start:\n{out}")
                    time.sleep(0.1)
            yield {"base": base, "log": tmp / "decisions.jsonl", "demo": demo_setup}
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout:
                proc.stdout.close()
    finally:
        del os.environ["ZEROTRUST_DEMO_DIR"]


def _auth(
    server: dict[str, Any], sub: str = "u-anna", roles: str = "agent", amr: str = "pwd,mfa"
) -> dict[str, str]:
    tok = server["demo"].demo_token(
        sub, roles=roles.split(","), department="support", amr=amr.split(",")
    )
    return {"authorization": f"Bearer {tok}"}


def _log_entry(server: dict[str, Any], decision_id: str) -> dict[str, Any]:
    for line in Path(server["log"]).read_text().splitlines():
        entry: dict[str, Any] = json.loads(line)
        if entry["decision_id"] == decision_id:
            return entry
    raise AssertionError(f"decision {decision_id} not in the log")


def test_allow_with_masked_fields(server: dict[str, Any]) -> None:
    r = httpx.get(f"{server['base']}/customers/c-1001", headers=_auth(server))
    assert r.status_code == 200
    assert r.json()["card_number"] == "****" and r.json()["ssn"] == "****"
    entry = _log_entry(server, r.headers["x-decision-id"])
    assert entry["effect"] == "allow"
    assert entry["extra"]["http"] == {
        "method": "GET",
        "path": "/customers/{id}",
        "route": "GET /customers/{id}",
    }
    assert "c-1001" not in json.dumps(entry["extra"])


def test_allow_with_tokenized_fields(server: dict[str, Any]) -> None:
    att = server["demo"].demo_attestation("d-21", "u-max", managed=True, compliant=True)
    headers = {**_auth(server, "u-max", "manager"), "x-device-attestation": att}
    r = httpx.get(f"{server['base']}/departments/support/export", headers=headers)
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    assert records and all(x["email"].startswith("tok_demo1_") for x in records)
    assert all(x["phone"].startswith("tok_demo1_") and x["card_number"] == "****" for x in records)
    assert "example.com" not in r.text


def test_step_up_header_per_rfc_9470(server: dict[str, Any]) -> None:
    r = httpx.get(f"{server['base']}/customers/c-1002", headers=_auth(server, amr="pwd"))
    assert r.status_code == 401
    [challenge] = parse_challenges(r.headers["www-authenticate"])
    assert challenge.scheme == "bearer"
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert challenge.params["acr_values"] == "urn:example:loa:2"
    assert int(challenge.params["max_age"]) == 600
    assert _log_entry(server, r.json()["decision_id"])["effect"] == "step_up"


def test_deny_is_problem_json(server: dict[str, Any]) -> None:
    r = httpx.get(f"{server['base']}/customers/c-5150", headers=_auth(server))
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "access_denied" and body["status"] == 403
    assert _log_entry(server, body["decision_id"])["effect"] == "deny"


def test_invalid_token(server: dict[str, Any]) -> None:
    tok = _auth(server)["authorization"]
    r = httpx.get(
        f"{server['base']}/customers/c-1001", headers={"authorization": tok[:-4] + "AAAA"}
    )
    assert r.status_code == 401
    assert parse_challenges(r.headers["www-authenticate"])[0].params["error"] == "invalid_token"
    assert (
        _log_entry(server, r.json()["decision_id"])["extra"]["enforcement"] == "invalid_signature"
    )


def test_forged_forwarded_for_from_untrusted_peer_is_ignored(server: dict[str, Any]) -> None:
    headers = {**_auth(server), "x-forwarded-for": "10.1.2.3", "cf-ipcountry": "DE"}
    r = httpx.get(f"{server['base']}/customers/c-1001", headers=headers)
    entry = _log_entry(server, r.headers["x-decision-id"])
    assert entry["request"]["context"]["ip"] == "127.0.0.1"
    assert "country" not in entry["request"]["context"]
    assert "non-corporate-network" in entry["risk"]["signals"]


def test_unknown_obligation_fails_closed(server: dict[str, Any]) -> None:
    r = httpx.patch(
        f"{server['base']}/customers/c-1001", headers=_auth(server), json={"name": "Mallory"}
    )
    assert r.status_code == 403 and r.json()["code"] == "obligation_unsupported"
    obligations = _log_entry(server, r.json()["decision_id"])["obligations"]
    assert "watermark" in [o["type"] for o in obligations]
    after = httpx.get(f"{server['base']}/customers/c-1001", headers=_auth(server))
    assert after.json()["name"] == "Ada Berg"
