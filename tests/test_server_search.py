"""The Search APIs through TestClient: candidates, validation, pagination, page tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from zerotrust import PolicyDecisionPoint
from zerotrust.server import Entities, ServerConfig, ServerConfigError, create_app
from zerotrust.server.entities import entities_from_mapping, load_entities
from zerotrust.server.search import PageTokens

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-for-tests-0123456789"
AUTH = {"authorization": f"Bearer {SECRET}"}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    pdp = PolicyDecisionPoint.from_path(ROOT / "examples" / "authzen-search")
    app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,), search_max_results=7))
    with TestClient(app, headers=AUTH) as c:
        yield c


def search(client: TestClient, kind: str, body: dict[str, Any], status: int = 200) -> Any:
    r = client.post(f"/access/v1/search/{kind}", json=body)
    assert r.status_code == status, r.text
    return r.json() if status == 200 else r.text


VIEWERS_OF_101 = [{"type": "user", "id": i} for i in ("alice", "bob", "carol", "dan")]


def test_subject_search_ignores_the_subject_id(client: TestClient) -> None:
    body = {
        "subject": {"type": "user"},
        "action": {"name": "view"},
        "resource": {"type": "record", "id": "101"},
    }
    assert search(client, "subject", body) == {"results": VIEWERS_OF_101}
    body["subject"]["id"] = "erin"
    assert search(client, "subject", body) == {"results": VIEWERS_OF_101}


def test_resource_search_ignores_the_resource_id(client: TestClient) -> None:
    body = {
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "delete"},
        "resource": {"type": "record"},
    }
    expected = [{"type": "record", "id": i} for i in ("105", "111", "117")]
    assert search(client, "resource", body)["results"] == expected
    body["resource"]["id"] = "101"
    assert search(client, "resource", body)["results"] == expected


def test_action_search_lists_permitted_actions_in_entity_order(client: TestClient) -> None:
    body = {"subject": {"type": "user", "id": "alice"}, "resource": {"type": "record", "id": "101"}}
    assert search(client, "action", body) == {
        "results": [{"name": "view"}, {"name": "edit"}, {"name": "delete"}]
    }
    body["action"] = {"name": "ignored"}
    assert len(search(client, "action", body)["results"]) == 3


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (
            "subject",
            {
                "subject": {"type": "spaceship"},
                "action": {"name": "view"},
                "resource": {"type": "record", "id": "101"},
            },
        ),
        (
            "resource",
            {
                "subject": {"type": "user", "id": "alice"},
                "action": {"name": "view"},
                "resource": {"type": "spaceship"},
            },
        ),
        (
            "action",
            {
                "subject": {"type": "user", "id": "nobody"},
                "resource": {"type": "record", "id": "101"},
            },
        ),
        (
            "action",
            {
                "subject": {"type": "user", "id": "alice"},
                "resource": {"type": "spaceship", "id": "x"},
            },
        ),
    ],
)
def test_unknown_entities_give_empty_results(
    client: TestClient, kind: str, body: dict[str, Any]
) -> None:
    assert search(client, kind, body) == {"results": []}


@pytest.mark.parametrize(
    ("kind", "body", "field"),
    [
        (
            "subject",
            {"subject": {"type": "user"}, "resource": {"type": "record", "id": "1"}},
            "action",
        ),
        (
            "subject",
            {
                "subject": {"type": "user"},
                "action": {"name": "view"},
                "resource": {"type": "record"},
            },
            "resource.id",
        ),
        (
            "subject",
            {"subject": {}, "action": {"name": "view"}, "resource": {"type": "record", "id": "1"}},
            "subject.type",
        ),
        ("resource", {"action": {"name": "view"}, "resource": {"type": "record"}}, "subject"),
        (
            "resource",
            {
                "subject": {"type": "user"},
                "action": {"name": "view"},
                "resource": {"type": "record"},
            },
            "subject.id",
        ),
        ("action", {"subject": {"type": "user", "id": "alice"}}, "resource"),
        (
            "action",
            {"subject": {"type": "user"}, "resource": {"type": "record", "id": "1"}},
            "subject.id",
        ),
        (
            "subject",
            {
                "subject": {"type": "user"},
                "action": {"name": "view"},
                "resource": {"type": "record", "id": "1"},
                "page": [],
            },
            "page",
        ),
        (
            "subject",
            {
                "subject": {"type": "user"},
                "action": {"name": "view"},
                "resource": {"type": "record", "id": "1"},
                "page": {"limit": -1},
            },
            "page.limit",
        ),
        (
            "subject",
            {
                "subject": {"type": "user"},
                "action": {"name": "view"},
                "resource": {"type": "record", "id": "1"},
                "page": {"limit": "2"},
            },
            "page.limit",
        ),
        (
            "subject",
            {
                "subject": {"type": "user"},
                "action": {"name": "view"},
                "resource": {"type": "record", "id": "1"},
                "page": {"token": 5},
            },
            "page.token",
        ),
    ],
)
def test_missing_or_wrong_fields_are_400(
    client: TestClient, kind: str, body: dict[str, Any], field: str
) -> None:
    assert search(client, kind, body, status=400).startswith(field)


ALICE_VIEWS = {
    "subject": {"type": "user", "id": "alice"},
    "action": {"name": "view"},
    "resource": {"type": "record"},
}


def test_pagination_walks_every_result_once(client: TestClient) -> None:
    everything = [f"{i}" for i in range(101, 121)]
    seen: list[str] = []
    body: dict[str, Any] = {**ALICE_VIEWS, "page": {"limit": 6}}
    pages = 0
    while True:
        result = search(client, "resource", body)
        pages += 1
        assert list(result) == ["page", "results"]  # page first, as the spec recommends
        assert result["page"]["count"] == len(result["results"])
        seen += [r["id"] for r in result["results"]]
        token = result["page"]["next_token"]
        if not token:
            break
        body = {**ALICE_VIEWS, "page": {"limit": 6, "token": token}}
    assert seen == everything
    assert pages == 4


def test_server_cap_paginates_even_without_a_page_request(client: TestClient) -> None:
    result = search(client, "resource", ALICE_VIEWS)
    assert len(result["results"]) == 7
    assert result["page"]["next_token"]


def test_a_page_request_without_more_results_has_an_empty_token(client: TestClient) -> None:
    body = {
        "subject": {"type": "user", "id": "erin"},
        "action": {"name": "delete"},
        "resource": {"type": "record"},
        "page": {"limit": 3},
    }
    result = search(client, "resource", body)
    assert result["page"] == {"next_token": "", "count": 3}
    body["page"] = {"limit": 0}  # 0: no limit of the PEP's own (the server's cap applies)
    assert len(search(client, "resource", body)["results"]) == 3


def test_a_token_for_another_query_or_a_forged_one_is_400(client: TestClient) -> None:
    first = search(client, "resource", {**ALICE_VIEWS, "page": {"limit": 2}})
    token = first["page"]["next_token"]
    changed = {**ALICE_VIEWS, "action": {"name": "edit"}, "page": {"limit": 2, "token": token}}
    assert search(client, "resource", changed, status=400).startswith("page.token")
    other_limit = {**ALICE_VIEWS, "page": {"limit": 3, "token": token}}
    assert search(client, "resource", other_limit, status=400).startswith("page.token")
    for forged in ("AAAA", "!!!", token[:-2] + "xx", "é"):
        body = {**ALICE_VIEWS, "page": {"limit": 2, "token": forged}}
        assert search(client, "resource", body, status=400).startswith("page.token")


def test_page_tokens_round_trip_and_bind_the_query() -> None:
    tokens = PageTokens(b"k" * 32)
    token = tokens.encode(17, "query-a")
    assert tokens.decode(token, "query-a") == 17
    with pytest.raises(ValueError, match="page token"):
        tokens.decode(token, "query-b")
    with pytest.raises(ValueError, match="page token"):
        PageTokens(b"k" * 32 + b"!").decode(token, "query-a")
    with pytest.raises(ValueError, match="16 bytes"):
        PageTokens(b"short")


def test_candidate_properties_come_from_entities_and_the_request() -> None:
    policy = """
policy: p
target: {resources: [doc]}
rules:
  - id: allow-clearance
    effect: allow
    when: >-
      has(subject.properties.clearance)
      && subject.properties.clearance >= resource.properties.level
"""
    entities = entities_from_mapping(
        {"subjects": {"user": {"low": {"clearance": 1}, "high": {"clearance": 3}, "none": None}}}
    )
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": policy})
    app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,)), entities=entities)
    body = {
        "subject": {"type": "user"},
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d", "properties": {"level": 2}},
    }
    with TestClient(app, headers=AUTH) as c:
        assert search(c, "subject", body)["results"] == [{"type": "user", "id": "high"}]
        body["subject"]["properties"] = {"clearance": 5}  # the PEP's word wins
        assert len(search(c, "subject", body)["results"]) == 3


def test_action_search_adds_the_actions_policies_name() -> None:
    policy = """
policy: p
target: {resources: [doc], actions: [read, share]}
rules:
  - {id: allow, effect: allow}
---
policy: q
target: {actions: [audit]}
rules:
  - {id: allow, effect: allow}
"""
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": policy})
    entities = entities_from_mapping(
        {"actions": {"doc": ["share", "print"], "*": ["print", "zap"]}}
    )
    assert entities.actions_for("doc") == ("share", "print", "zap")
    assert pdp.policies.action_names("doc") == ("audit", "read", "share")
    app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,)), entities=entities)
    body = {"subject": {"type": "user", "id": "u"}, "resource": {"type": "doc", "id": "d"}}
    with TestClient(app, headers=AUTH) as c:
        names = [r["name"] for r in search(c, "action", body)["results"]]
    assert names == ["share", "audit", "read"]  # print and zap: no policy applies


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "must be a mapping"),
        ({"people": {}}, "unknown section"),
        ({"subjects": {"user": ["alice"]}}, "must map an id"),
        ({"subjects": {"user": {5: {}}}}, "must be a string"),
        ({"resources": {"doc": {"d": "x"}}}, "properties must be a mapping"),
        ({"actions": {"doc": "read"}}, "list of action names"),
        ({"actions": 3}, "must map a resource type"),
        ({"subjects": {"": {}}}, "non-empty string"),
    ],
)
def test_invalid_entities_are_refused(raw: Any, message: str) -> None:
    with pytest.raises(ServerConfigError, match=message):
        entities_from_mapping(raw)


def test_entities_files_in_yaml_and_json(tmp_path: Path) -> None:
    (tmp_path / "e.yaml").write_text("subjects:\n  user:\n    a: {x: 1}\n", encoding="utf-8")
    (tmp_path / "e.json").write_text('{"resources": {"doc": {"d": {}}}}', encoding="utf-8")
    (tmp_path / "bad.json").write_text("{", encoding="utf-8")
    assert load_entities(tmp_path / "e.yaml").subjects_of("user")[0].properties == {"x": 1}
    assert load_entities(tmp_path / "e.json").resources_of("doc")[0].id == "d"
    assert load_entities(tmp_path / "e.json").subjects_of("user") == ()
    with pytest.raises(ServerConfigError, match=r"bad.json:1:2: invalid JSON"):
        load_entities(tmp_path / "bad.json")
    with pytest.raises(ServerConfigError, match="cannot read"):
        load_entities(tmp_path / "missing.yaml")
    assert Entities().actions_for("doc") == ()
