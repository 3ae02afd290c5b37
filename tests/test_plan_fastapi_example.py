"""examples/plans_fastapi.py: a list endpoint filtered by a plan, through FastAPI's
TestClient with real signed tokens and device attestations."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi.testclient import TestClient


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    monkeypatch.setenv("ZEROTRUST_DEMO_DIR", str(tmp_path / "keys"))
    monkeypatch.setenv("CUSTOMERS_DB", f"sqlite:///{tmp_path / 'customers.db'}")
    for name in ("examples.plans_fastapi", "examples.demo_setup"):
        sys.modules.pop(name, None)
    module = importlib.import_module("examples.plans_fastapi")
    yield module
    module.engine.dispose()
    sys.modules.pop("examples.plans_fastapi", None)


def _headers(roles: list[str], amr: list[str] = ["pwd"]) -> dict[str, str]:  # noqa: B006
    demo = sys.modules["examples.demo_setup"]
    token = demo.demo_token("u-anna", roles=roles, department="support", amr=amr)
    attestation = demo.demo_attestation("d-17", "u-anna", managed=True, compliant=True)
    return {"authorization": f"Bearer {token}", "x-device-attestation": attestation}


def _allowed_one_by_one(example: ModuleType, headers: dict[str, str]) -> list[str]:
    demo = sys.modules["examples.demo_setup"]
    token = headers["authorization"].split()[1]
    allowed = []
    for rid, record in sorted(demo.CUSTOMERS.items()):
        properties = {"owner_dept": record["owner_dept"], "sensitivity": record["sensitivity"]}
        request: dict[str, Any] = {
            "subject": {"token": token},
            "device": {"attestation": headers["x-device-attestation"]},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": rid, "properties": properties},
            "context": {"ip": "testclient"},
        }
        if example.pdp.evaluate(request).allowed:
            allowed.append(rid)
    return allowed


@pytest.mark.parametrize("roles", [["agent"], ["manager"], ["auditor"]])
@pytest.mark.parametrize("amr", [["pwd"], ["pwd", "mfa"], ["pwd", "mfa", "hwk"]])
def test_the_list_is_what_deciding_each_record_allows(
    example: ModuleType, roles: list[str], amr: list[str]
) -> None:
    client = TestClient(example.app)
    headers = _headers(roles, amr)
    body = client.get("/customers", headers=headers).json()
    assert [c["id"] for c in body["customers"]] == _allowed_one_by_one(example, headers)


def test_agents_see_masked_records_and_are_told_what_a_step_up_opens(example: ModuleType) -> None:
    client = TestClient(example.app)
    body = client.get("/customers", headers=_headers(["agent"])).json()
    assert body["customers"], body
    assert all(c["ssn"] == "****" and c["card_number"] == "****" for c in body["customers"])
    assert body["step_up"]["acr_values"]
    manager = client.get("/customers", headers=_headers(["manager"])).json()
    assert all(c["ssn"] != "****" for c in manager["customers"])


def test_pages_follow_each_other(example: ModuleType) -> None:
    client = TestClient(example.app)
    headers = _headers(["manager"], ["pwd", "mfa", "hwk"])
    whole = [c["id"] for c in client.get("/customers", headers=headers).json()["customers"]]
    assert len(whole) >= 2
    seen, after = [], ""
    while True:
        body = client.get(f"/customers?limit=1&after={after}", headers=headers).json()
        seen += [c["id"] for c in body["customers"]]
        if body["next"] is None:
            break
        after = body["next"]
    assert seen == whole


def test_rows_returned_are_counted_as_read(example: ModuleType) -> None:
    client = TestClient(example.app)
    headers = _headers(["manager"])
    shown = len(client.get("/customers", headers=headers).json()["customers"])
    after = example.pdp.evaluate(
        {
            "subject": {"token": headers["authorization"].split()[1]},
            "action": {"name": "read"},
            "resource": {"type": "customer_record", "id": "c-1001"},
        }
    )
    assert after.behavior is not None
    assert after.behavior["records_24h"] >= shown > 0


@pytest.mark.parametrize(
    "headers",
    [{}, {"authorization": "Bearer not-a-token"}, {"authorization": "Basic dXNlcjpwYXNz"}],
)
def test_no_valid_token_no_list(example: ModuleType, headers: dict[str, str]) -> None:
    response = TestClient(example.app).get("/customers", headers=headers)
    assert response.status_code == 401
    assert "customers" not in response.json()
