"""POST /access/v1/evaluations: defaults, per-item override, and the three semantics."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from zerotrust import PolicyDecisionPoint
from zerotrust.errors import RequestError
from zerotrust.server import ServerConfig, create_app
from zerotrust.server.protocol import BatchRequest, Semantic, parse_batch

SECRET = "s3cret-for-tests-0123456789"
AUTH = {"authorization": f"Bearer {SECRET}"}

# Documents 1 and 3 are readable, 2 is not: the spec's own example of the semantics.
POLICY = """
policy: docs
target: {resources: [document]}
rules:
  - id: allow-odd
    effect: allow
    when: "resource.id in ['1', '3']"
"""
ALICE = {"type": "user", "id": "alice@example.com"}
READ = {"name": "read"}


def doc(id_: str) -> dict[str, Any]:
    return {"resource": {"type": "document", "id": id_}}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY})
    app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,), max_evaluations=5))
    with TestClient(app, headers=AUTH) as c:
        yield c


def batch(client: TestClient, body: dict[str, Any]) -> Any:
    r = client.post("/access/v1/evaluations", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def decisions(body: Any) -> list[bool]:
    return [e["decision"] for e in body["evaluations"]]


def test_execute_all_is_the_default_and_keeps_order(client: TestClient) -> None:
    body = {"subject": ALICE, "action": READ, "evaluations": [doc("1"), doc("2"), doc("3")]}
    assert decisions(batch(client, body)) == [True, False, True]
    body["options"] = {"evaluations_semantic": "execute_all", "another_option": "value"}
    assert decisions(batch(client, body)) == [True, False, True]


def test_deny_on_first_deny_stops_at_the_first_deny(client: TestClient) -> None:
    body = {
        "subject": ALICE,
        "action": READ,
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [doc("1"), doc("2"), doc("3")],
    }
    result = batch(client, body)
    assert decisions(result) == [True, False]
    last = result["evaluations"][1]["context"]
    assert (last["code"], last["reason"]) == ("200", "deny_on_first_deny")


def test_deny_on_first_deny_without_a_deny_runs_everything(client: TestClient) -> None:
    body = {
        "subject": ALICE,
        "action": READ,
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [doc("1"), doc("3")],
    }
    assert decisions(batch(client, body)) == [True, True]


def test_an_invalid_item_counts_as_a_deny_for_deny_on_first_deny(client: TestClient) -> None:
    body = {
        "subject": ALICE,
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [{"action": READ, **doc("1")}, doc("3"), {"action": READ, **doc("1")}],
    }
    result = batch(client, body)
    assert decisions(result) == [True, False]
    assert result["evaluations"][1]["context"]["code"] == "400"
    assert result["evaluations"][1]["context"]["error"]["status"] == 400


def test_permit_on_first_permit_stops_at_the_first_permit(client: TestClient) -> None:
    body = {
        "subject": ALICE,
        "action": READ,
        "options": {"evaluations_semantic": "permit_on_first_permit"},
        "evaluations": [doc("2"), doc("1"), doc("3")],
    }
    assert decisions(batch(client, body)) == [False, True]
    body["evaluations"] = [doc("2"), doc("4")]
    assert decisions(batch(client, body)) == [False, False]


def test_items_replace_defaults_whole(client: TestClient) -> None:
    body = {
        "subject": ALICE,
        "action": {"name": "read"},
        "resource": {"type": "document", "id": "2"},
        "context": {"time": "2024-05-31T15:22-07:00"},
        "evaluations": [
            {},
            doc("1"),
            {"resource": {"type": "document", "id": "3"}, "context": {"other": True}},
            {"resource": None},
        ],
    }
    assert decisions(batch(client, body)) == [False, True, True, False]


def test_execute_all_marks_an_invalid_item_false_with_an_error(client: TestClient) -> None:
    body = {
        "subject": {"type": "user", "id": "alice"},
        "action": {"name": "read"},
        "options": {"evaluations_semantic": "execute_all"},
        "evaluations": [doc("1"), {}, "not an object", {"resource": {"type": "document"}}],
    }
    result = batch(client, body)
    assert decisions(result) == [True, False, False, False]
    errors = [e["context"]["error"]["message"] for e in result["evaluations"][1:]]
    assert errors == [
        "resource: is required",
        "evaluations[2]: must be an object, not a string",
        "resource.id: is required",
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"subject": ALICE, "action": READ, "evaluations": []},
        {"subject": ALICE, "action": READ, "evaluations": None},
        {"subject": ALICE, "action": READ},
    ],
)
def test_no_evaluations_behaves_like_a_single_evaluation(
    client: TestClient, body: dict[str, Any]
) -> None:
    result = batch(client, {**body, **doc("1")})
    assert result["decision"] is True
    assert "evaluations" not in result


@pytest.mark.parametrize(
    "body",
    [
        {"subject": ALICE, "action": READ, "evaluations": []},  # no resource anywhere
        {"evaluations": {"0": doc("1")}},
        {"subject": ALICE, "action": READ, "evaluations": [doc("1")], "options": []},
        {
            "subject": ALICE,
            "action": READ,
            "evaluations": [doc("1")],
            "options": {"evaluations_semantic": "first_match"},
        },
        {"subject": "alice", "action": READ, "evaluations": [doc("1")]},  # bad default
        {"subject": {"type": "user"}, "action": READ, "evaluations": [doc("1")]},
        {"context": [], "subject": ALICE, "action": READ, "evaluations": [doc("1")]},
        {"subject": ALICE, "action": READ, "evaluations": [doc(str(i)) for i in range(6)]},
    ],
)
def test_whole_payload_problems_are_400(client: TestClient, body: dict[str, Any]) -> None:
    assert client.post("/access/v1/evaluations", json=body).status_code == 400


def test_parse_batch_keeps_item_errors_apart() -> None:
    parsed = parse_batch({"subject": ALICE, "action": READ, "evaluations": [doc("1"), {}]})
    assert isinstance(parsed, BatchRequest)
    assert parsed.semantic is Semantic.EXECUTE_ALL
    assert isinstance(parsed.items[0], dict)
    assert parsed.items[0]["resource"] == {"type": "document", "id": "1", "properties": {}}
    assert isinstance(parsed.items[1], RequestError)
