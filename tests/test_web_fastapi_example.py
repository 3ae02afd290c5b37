"""examples/fastapi_app.py: FastAPI's TestClient in-process, and uvicorn on 127.0.0.1."""

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse
from test_web_e2e import server  # noqa: F401  # uvicorn serving the example on 127.0.0.1
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from zerotrust.web import parse_challenges


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("ZEROTRUST_DEMO_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("ZEROTRUST_DECISION_LOG", str(tmp_path / "decisions.jsonl"))
    for name in ("examples.fastapi_app", "examples.demo_setup"):
        sys.modules.pop(name, None)
    module = importlib.import_module("examples.fastapi_app")
    yield module
    sys.modules.pop("examples.fastapi_app", None)


def _auth(example: ModuleType, amr: str = "pwd,mfa") -> dict[str, str]:
    demo = sys.modules["examples.demo_setup"]
    tok = demo.demo_token("u-anna", roles=["agent"], department="support", amr=amr.split(","))
    return {"authorization": f"Bearer {tok}"}


def test_example_in_process(example: ModuleType) -> None:
    client = TestClient(example.app)
    r = client.get("/customers/c-1001", headers=_auth(example))
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    assert r.headers["x-decision-id"]
    assert client.get("/customers/c-1001").status_code == 401
    assert client.get("/customers/c-5150", headers=_auth(example)).status_code == 403
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert spec["paths"]["/customers/{id}"]["get"]["security"] == [{"bearer": []}]
    assert "security" not in spec["paths"]["/health"]["get"]


def test_example_under_uvicorn_step_up_then_mfa(server: dict[str, Any]) -> None:  # noqa: F811
    base, demo = server["base"], server["demo"]

    def auth(amr: list[str]) -> dict[str, str]:
        tok = demo.demo_token("u-anna", roles=["agent"], department="support", amr=amr)
        return {"authorization": f"Bearer {tok}"}

    r = httpx.get(f"{base}/customers/c-1002", headers=auth(["pwd"]))
    assert r.status_code == 401
    [challenge] = parse_challenges(r.headers["www-authenticate"])
    assert challenge.params["error"] == "insufficient_user_authentication"
    r = httpx.get(f"{base}/customers/c-1002", headers=auth(["pwd", "mfa"]))
    assert r.status_code == 200 and r.json()["ssn"] == "****"
    assert httpx.get(f"{base}/docs").status_code == 200
    assert httpx.get(f"{base}/health").json() == {"status": "ok"}
    spec = httpx.get(f"{base}/openapi.json").json()
    assert "bearer" in spec["components"]["securitySchemes"]


def test_example_websocket_in_process(example: ModuleType) -> None:
    client = TestClient(example.app)
    with client.websocket_connect("/customers/c-1001/live", headers=_auth(example)) as ws:
        assert ws.receive_json()["card_number"] == "****"
    for path, headers, status in (
        ("/customers/c-1001/live", {}, 401),
        ("/customers/c-5150/live", _auth(example), 403),
        ("/customers/c-1002/live", _auth(example, "pwd"), 401),
    ):
        with pytest.raises(WebSocketDenialResponse) as refused:
            client.websocket_connect(path, headers=headers).__enter__()
        assert refused.value.status_code == status


def test_example_websocket_under_uvicorn(server: dict[str, Any]) -> None:  # noqa: F811
    ws_base = server["base"].replace("http://", "ws://")
    tok = server["demo"].demo_token("u-anna", roles=["agent"], department="support", amr=["mfa"])
    live = f"{ws_base}/customers/c-1001/live"
    with connect(live, additional_headers={"authorization": f"Bearer {tok}"}) as ws:
        assert json.loads(ws.recv(timeout=10))["ssn"] == "****"
    with pytest.raises(InvalidStatus) as refused:
        connect(live, open_timeout=10).close()
    assert refused.value.response.status_code == 401
