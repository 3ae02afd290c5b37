"""Malformed bodies never produce a 5xx or an allow.

The policy allows everything, so the only thing between a malformed body and
``"decision": true`` is the server's validation: every malformed body must be
refused with a 4xx, never evaluated, never a crash.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient
from strategies import json_values

from zerotrust import PolicyDecisionPoint
from zerotrust.server import ServerConfig, create_app

SECRET = "fuzz-secret-0123456789abcdef"
ALLOW_ALL = """
policy: everything
rules:
  - {id: allow-all, effect: allow}
"""
ENTITIES = """
entities:
  subjects: {user: {alice: {}, bob: {}}}
  resources: {record: {r1: {}, r2: {}}}
  actions: {record: [read]}
"""
VALID = {
    "subject": {"type": "user", "id": "alice", "properties": {"a": 1}},
    "action": {"name": "read", "properties": {}},
    "resource": {"type": "record", "id": "r1"},
    "context": {"ip": "10.0.0.1"},
}
PATHS = {
    "evaluation": "/access/v1/evaluation",
    "evaluations": "/access/v1/evaluations",
    "subject": "/access/v1/search/subject",
    "resource": "/access/v1/search/resource",
    "action": "/access/v1/search/action",
}
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": ALLOW_ALL, "e.data.yaml": ENTITIES})
    app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,), max_body_bytes=64 * 1024))
    with TestClient(app, headers={"authorization": f"Bearer {SECRET}"}) as c:
        yield c


def send(
    client: TestClient, path: str, content: bytes, content_type: str = "application/json"
) -> Any:
    return client.post(path, content=content, headers={"content-type": content_type})


def _entity_ok(value: Any, need_id: bool) -> bool:
    return (
        isinstance(value, dict)
        and isinstance(value.get("type"), str)
        and bool(value["type"])
        and (not need_id or (isinstance(value.get("id"), str) and bool(value["id"])))
        and (value.get("properties") is None or isinstance(value["properties"], dict))
    )


def valid_evaluation(body: Any) -> bool:
    """An independent, deliberately simple oracle for a well-formed evaluation body."""
    if not isinstance(body, dict):
        return False
    action = body.get("action")
    context = body.get("context")
    return (
        _entity_ok(body.get("subject"), True)
        and _entity_ok(body.get("resource"), True)
        and isinstance(action, dict)
        and isinstance(action.get("name"), str)
        and bool(action["name"])
        and (action.get("properties") is None or isinstance(action["properties"], dict))
        and (context is None or isinstance(context, dict))
        and (
            context is None or context.get("device") is None or isinstance(context["device"], dict)
        )
    )


BROKEN_VALUES = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.text(max_size=5)
    | st.lists(st.integers(), max_size=2)
    | st.just({})
)


@st.composite
def broken_requests(draw: st.DrawFn) -> dict[str, Any]:
    """A valid request with one required part removed or replaced by a wrong type."""
    body = json.loads(json.dumps(VALID))
    target = draw(
        st.sampled_from(
            [
                ("subject",),
                ("action",),
                ("resource",),
                ("subject", "type"),
                ("subject", "id"),
                ("action", "name"),
                ("resource", "type"),
                ("resource", "id"),
                ("subject", "properties"),
                ("resource", "properties"),
                ("action", "properties"),
                ("context",),
            ]
        )
    )
    holder = body
    for key in target[:-1]:
        holder = holder[key]
    if draw(st.booleans()) and target[-1] not in ("properties", "context"):
        del holder[target[-1]]
    else:
        holder[target[-1]] = draw(BROKEN_VALUES)
    assume(not valid_evaluation(body))
    return body


def assert_refused(response: Any) -> None:
    """Refused as a whole: a 4xx, so nothing was evaluated (and nothing allowed)."""
    assert 400 <= response.status_code < 500, (response.status_code, response.text)


@SETTINGS
@given(body=broken_requests(), path=st.sampled_from(["evaluation", "evaluations"]))
def test_broken_requests_are_refused(client: TestClient, body: dict[str, Any], path: str) -> None:
    assert_refused(send(client, PATHS[path], json.dumps(body).encode()))


@SETTINGS
@given(body=json_values(16))
def test_arbitrary_json_is_refused_unless_well_formed(client: TestClient, body: Any) -> None:
    assume(not valid_evaluation(body))
    assert_refused(send(client, PATHS["evaluation"], json.dumps(body).encode()))


@SETTINGS
@given(content=st.binary(max_size=200), path=st.sampled_from(sorted(PATHS)))
def test_arbitrary_bytes_never_crash_or_allow(
    client: TestClient, content: bytes, path: str
) -> None:
    with contextlib.suppress(ValueError):  # not JSON at all: certainly malformed
        assume(not valid_evaluation(json.loads(content)))
    response = send(client, PATHS[path], content)
    assert response.status_code < 500
    if response.status_code == 200:  # a search of valid JSON may succeed, with no allow
        assert '"decision":true' not in response.text


MEDIA_TYPES = st.from_regex(
    r"[a-z]{1,11}/[a-z+.-]{1,16}(; ?charset=[a-z0-9-]{1,8})?", fullmatch=True
)


@SETTINGS
@given(content_type=MEDIA_TYPES)
def test_wrong_content_type_is_refused(client: TestClient, content_type: str) -> None:
    media, _, params = content_type.partition(";")
    assume(media != "application/json" or params.strip() not in ("charset=utf-8", "charset=utf8"))
    response = send(client, PATHS["evaluation"], json.dumps(VALID).encode(), content_type)
    assert response.status_code == 400


@SETTINGS
@given(body=broken_requests(), kind=st.sampled_from(["resource", "action"]))
def test_broken_search_inputs_are_refused(
    client: TestClient, body: dict[str, Any], kind: str
) -> None:
    # The subject is an input of resource and action search, so it must be complete.
    assume(
        not _entity_ok(body.get("subject"), True)
        or not _entity_ok(body.get("resource"), kind == "action")
    )
    assert_refused(send(client, PATHS[kind], json.dumps(body).encode()))


@SETTINGS
@given(items=st.lists(broken_requests(), min_size=1, max_size=4))
def test_broken_batch_items_are_denied_one_by_one(client: TestClient, items: list[Any]) -> None:
    response = send(client, PATHS["evaluations"], json.dumps({"evaluations": items}).encode())
    assert response.status_code == 200
    results = response.json()["evaluations"]
    assert len(results) == len(items)
    assert all(r["decision"] is False and r["context"]["error"]["status"] == 400 for r in results)


def test_the_valid_request_is_allowed(client: TestClient) -> None:
    """The control: the same server does allow a well-formed request."""
    assert valid_evaluation(VALID)
    assert send(client, PATHS["evaluation"], json.dumps(VALID).encode()).json()["decision"] is True
