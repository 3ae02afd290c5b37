"""The AuthZEN HTTP app through Starlette's TestClient: every endpoint and every error."""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from metrics_helpers import samples
from starlette.testclient import TestClient

from zerotrust import AccessRequest, Decision, PolicyDecisionPoint
from zerotrust.server import ServerConfig, ServerConfigError, create_app

ROOT = Path(__file__).resolve().parents[1]
SECRET = "s3cret-for-tests-0123456789"
OTHER_SECRET = "rotated-secret-abcdefghijk"
AUTH = {"authorization": f"Bearer {SECRET}"}
NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)

POLICIES = {
    "docs.yaml": """
policy: docs
target: {resources: [doc]}
rules:
  - id: deny-blocked
    effect: deny
    when: "has(subject.properties.blocked) && subject.properties.blocked == true"
    reason: blocked subject
  - id: step-up-secret
    effect: step_up
    when: "has(resource.properties.level) && resource.properties.level >= 3"
    step_up: {acr_values: ["urn:example:loa:2", "urn:example:loa:3"], max_age: 300}
  - id: allow-owner
    effect: allow
    when: "has(resource.properties.owner) && resource.properties.owner == subject.id"
    reason: owners read their documents
    obligations: [{type: mask, fields: [ssn]}]
  - id: allow-managed-device
    effect: allow
    when: "has(device.managed) && device.managed == true"
""",
    "entities.data.yaml": """
entities:
  subjects:
    user:
      u-1: {}
      u-2: {}
      u-3: {}
  resources:
    doc:
      d-1: {owner: u-1}
      d-2: {owner: u-2}
      d-3: {owner: u-1}
  actions:
    doc: [read, write]
""",
}


def req(**over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "subject": {"type": "user", "id": "u-1"},
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d-1", "properties": {"owner": "u-1"}},
    }
    body.update(over)
    return body


def make_client(
    pdp: PolicyDecisionPoint | None = None,
    *,
    client: tuple[str, int] = ("testclient", 50000),
    **config: Any,
) -> TestClient:
    config.setdefault("bearer_secrets", (SECRET,))
    app = create_app(pdp or PolicyDecisionPoint.from_texts(POLICIES), config=ServerConfig(**config))
    return TestClient(app, client=client)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    with make_client() as c:
        yield c


def post(c: TestClient, path: str, body: Any, **headers: str) -> Any:
    return c.post(path, json=body, headers={**AUTH, **headers})


# --- evaluation ------------------------------------------------------------------------


def test_evaluation_allow_has_decision_and_context(client: TestClient) -> None:
    r = post(client, "/access/v1/evaluation", req())
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["decision"] is True
    ctx = body["context"]
    assert ctx["effect"] == "allow"
    assert len(ctx["decision_id"]) == 36
    assert ctx["reasons"] == [
        {"rule": "docs/allow-owner", "effect": "allow", "reason": "owners read their documents"}
    ]
    assert ctx["obligations"] == [{"type": "mask", "fields": ["ssn"]}]
    assert ctx["policy_revision"].startswith("sha256:")


def test_deny_is_200_with_false(client: TestClient) -> None:
    body = post(client, "/access/v1/evaluation", req(subject={"type": "user", "id": "u-9"})).json()
    assert body["decision"] is False
    assert body["context"]["effect"] == "deny"
    assert body["context"]["reasons"][0]["rule"] == "default-deny"


def test_step_up_maps_to_false_with_acr_values_and_max_age(client: TestClient) -> None:
    resource = {"type": "doc", "id": "d-1", "properties": {"owner": "u-1", "level": 3}}
    body = post(client, "/access/v1/evaluation", req(resource=resource)).json()
    assert body["decision"] is False
    ctx = body["context"]
    assert ctx["effect"] == "step_up"
    assert ctx["acr_values"] == "urn:example:loa:2 urn:example:loa:3"
    assert ctx["max_age"] == 300
    assert "amr_values" not in ctx


def test_device_travels_in_context_device(client: TestClient) -> None:
    resource = {"type": "doc", "id": "d-2", "properties": {"owner": "u-2"}}
    denied = post(client, "/access/v1/evaluation", req(resource=resource)).json()
    allowed = post(
        client,
        "/access/v1/evaluation",
        req(resource=resource, context={"device": {"managed": True}}),
    ).json()
    assert (denied["decision"], allowed["decision"]) == (False, True)


def test_top_level_device_is_an_unknown_field_and_ignored(client: TestClient) -> None:
    resource = {"type": "doc", "id": "d-2", "properties": {"owner": "u-2"}}
    body = post(client, "/access/v1/evaluation", req(resource=resource, device={"managed": True}))
    assert body.json()["decision"] is False


def test_unknown_fields_are_ignored_everywhere(client: TestClient) -> None:
    body = req(foo="bar", futureField={"nested": True})
    body["subject"]["extra"] = 1
    body["action"]["extra"] = [1]
    body["resource"]["extra"] = None
    assert post(client, "/access/v1/evaluation", body).json()["decision"] is True


def test_reasons_can_be_switched_off() -> None:
    with make_client(include_reasons=False) as c:
        ctx = post(c, "/access/v1/evaluation", req()).json()["context"]
    assert set(ctx) == {"decision_id", "effect", "obligations"}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": {"name": "read"}, "resource": {"type": "doc", "id": "d"}}, "subject"),
        (req(action=None), "action"),
        (req(resource="doc"), "resource"),
        (req(subject={"id": "u-1"}), "subject.type"),
        (req(subject={"type": "user"}), "subject.id"),
        (req(subject={"type": "user", "id": ""}), "subject.id"),
        (req(action={}), "action.name"),
        (req(action={"name": 123}), "action.name"),
        (req(resource={"id": "d-1"}), "resource.type"),
        (req(resource={"type": "doc"}), "resource.id"),
        (req(resource={"type": "doc", "id": 7}), "resource.id"),
        (req(subject={"type": "user", "id": "u", "properties": []}), "subject.properties"),
        (req(context="now"), "context"),
        (req(context={"device": "laptop"}), "context.device"),
    ],
)
def test_missing_or_wrongly_typed_fields_are_400(
    client: TestClient, body: dict[str, Any], field: str
) -> None:
    r = post(client, "/access/v1/evaluation", body)
    assert r.status_code == 400
    assert r.headers["content-type"].startswith("text/plain")
    assert r.text.startswith(field)


@pytest.mark.parametrize(
    "content",
    [b"", b"   ", b"{", b"[1, 2]", b'"text"', b"null", b'{"a": 1, "a": 2}', b'{"a": NaN}'],
)
def test_malformed_or_empty_bodies_are_400(client: TestClient, content: bytes) -> None:
    r = client.post(
        "/access/v1/evaluation",
        content=content,
        headers={**AUTH, "content-type": "application/json"},
    )
    assert r.status_code == 400


def test_non_utf8_and_deeply_nested_bodies_are_400(client: TestClient) -> None:
    headers = {**AUTH, "content-type": "application/json"}
    assert (
        client.post("/access/v1/evaluation", content=b'{"\xff": 1}', headers=headers).status_code
        == 400
    )
    deep = b'{"context": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    assert client.post("/access/v1/evaluation", content=deep, headers=headers).status_code == 400
    nested: Any = "leaf"
    for _ in range(40):
        nested = {"k": nested}
    r = post(client, "/access/v1/evaluation", req(context=nested))
    assert r.status_code == 400
    assert "nested deeper" in r.text


@pytest.mark.parametrize(
    ("content_type", "status"),
    [
        (None, 400),
        ("text/plain", 400),
        ("application/x-www-form-urlencoded", 400),
        ("application/jsonx", 400),
        ("application/json; charset=latin-1", 400),
        ("application/json; charset=utf-8", 200),
        ("Application/JSON", 200),
    ],
)
def test_content_type_must_be_json(
    client: TestClient, content_type: str | None, status: int
) -> None:
    headers = dict(AUTH)
    if content_type is not None:
        headers["content-type"] = content_type
    r = client.post("/access/v1/evaluation", content=json.dumps(req()).encode(), headers=headers)
    assert r.status_code == status


def test_body_size_limit_is_413() -> None:
    with make_client(max_body_bytes=200) as c:
        big = req(context={"pad": "x" * 300})
        assert post(c, "/access/v1/evaluation", big).status_code == 413

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield b'{"context": {"pad": "'
            yield b"x" * 300
            yield b'"}}'

        r = c.post(
            "/access/v1/evaluation",
            content=chunks(),
            headers={**AUTH, "content-type": "application/json"},
        )
        assert r.status_code == 413
        assert post(c, "/access/v1/evaluation", req()).status_code == 200


# --- authentication -------------------------------------------------------------------


def test_missing_bearer_token_is_401_with_challenge(client: TestClient) -> None:
    r = client.post("/access/v1/evaluation", json=req())
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="zerotrust"'


@pytest.mark.parametrize(
    "header",
    [f"Bearer {SECRET}x", f"Bearer {SECRET[:-1]}", f"Basic {SECRET}", "Bearer", SECRET, ""],
)
def test_wrong_credentials_are_401(client: TestClient, header: str) -> None:
    r = client.post("/access/v1/evaluation", json=req(), headers={"authorization": header})
    assert r.status_code == 401
    assert r.headers["www-authenticate"].startswith("Bearer")


def test_authentication_comes_before_reading_the_body(client: TestClient) -> None:
    r = client.post("/access/v1/evaluation", content=b"{", headers={"content-type": "text/plain"})
    assert r.status_code == 401


def test_several_secrets_allow_rotation() -> None:
    with make_client(bearer_secrets=(SECRET, OTHER_SECRET)) as c:
        for secret in (SECRET, OTHER_SECRET):
            r = c.post(
                "/access/v1/evaluation", json=req(), headers={"authorization": f"bearer {secret}"}
            )
            assert r.status_code == 200


def test_no_secret_means_no_server() -> None:
    with pytest.raises(ServerConfigError, match="no bearer secret"):
        ServerConfig()
    with pytest.raises(ServerConfigError, match="at least 16"):
        ServerConfig(bearer_secrets=("short",))


def test_insecure_local_serves_loopback_callers_only() -> None:
    pdp = PolicyDecisionPoint.from_texts(POLICIES)
    for host, status in (("127.0.0.1", 200), ("::1", 200), ("203.0.113.9", 403), ("x", 403)):
        with make_client(pdp, client=(host, 4000), bearer_secrets=(), insecure_local=True) as c:
            assert c.post("/access/v1/evaluation", json=req()).status_code == status


def test_metrics_need_the_bearer_token_health_and_metadata_do_not(client: TestClient) -> None:
    assert client.get("/metrics").status_code == 401
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/.well-known/authzen-configuration").status_code == 200


# --- headers, metadata, health, metrics ---------------------------------------------


def test_x_request_id_is_echoed_on_success_and_errors(client: TestClient) -> None:
    rid = "bfe9eb29-ab87-4ca3-be83-a1d5d8305716"
    for r in (
        post(client, "/access/v1/evaluation", req(), **{"x-request-id": rid}),
        post(client, "/access/v1/evaluation", {}, **{"x-request-id": rid}),
        client.post("/access/v1/evaluation", json=req(), headers={"x-request-id": rid}),
        client.get("/nowhere", headers={"x-request-id": rid}),
    ):
        assert r.headers["x-request-id"] == rid
    generated = post(client, "/access/v1/evaluation", req()).headers["x-request-id"]
    assert len(generated) == 36


def test_request_id_reaches_the_decision_log() -> None:
    seen: list[Mapping[str, Any]] = []

    class Sink:
        def emit(
            self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]
        ) -> None:
            seen.append(extra)

    pdp = PolicyDecisionPoint.from_texts(POLICIES, decision_log=Sink())
    with make_client(pdp) as c:
        post(c, "/access/v1/evaluation", req(), **{"x-request-id": "rid-1"})
    assert seen == [{"api": "authzen", "endpoint": "evaluation", "request_id": "rid-1"}]


def test_metadata_lists_every_endpoint() -> None:
    with make_client(base_url="https://pdp.example.com") as c:
        r = c.get("/.well-known/authzen-configuration")
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {
        "policy_decision_point": "https://pdp.example.com",
        "access_evaluation_endpoint": "https://pdp.example.com/access/v1/evaluation",
        "access_evaluations_endpoint": "https://pdp.example.com/access/v1/evaluations",
        "search_subject_endpoint": "https://pdp.example.com/access/v1/search/subject",
        "search_resource_endpoint": "https://pdp.example.com/access/v1/search/resource",
        "search_action_endpoint": "https://pdp.example.com/access/v1/search/action",
    }


def test_metadata_without_base_url_reflects_the_request(client: TestClient) -> None:
    body = client.get("/.well-known/authzen-configuration").json()
    assert body["policy_decision_point"] == "http://testserver"


def test_wrong_method_and_unknown_path(client: TestClient) -> None:
    assert client.get("/access/v1/evaluation", headers=AUTH).status_code == 405
    assert client.post("/access/v2/evaluation", headers=AUTH, json=req()).status_code == 404


def test_metrics_count_decisions_requests_and_latency() -> None:
    with make_client() as c:
        post(c, "/access/v1/evaluation", req())
        post(c, "/access/v1/evaluation", req(subject={"type": "user", "id": "u-9"}))
        post(c, "/access/v1/evaluation", {})
        c.post("/access/v1/evaluation", json=req())
        text = c.get("/metrics", headers=AUTH).text
    found = samples(text)
    assert found['zerotrust_decisions_total{effect="allow"}'] == 1
    assert found['zerotrust_decisions_total{effect="deny"}'] == 1
    assert found['zerotrust_decisions_total{effect="step_up"}'] == 0
    assert found['zerotrust_http_requests_total{endpoint="evaluation",status="200"}'] == 2
    assert found['zerotrust_http_requests_total{endpoint="evaluation",status="400"}'] == 1
    assert found['zerotrust_http_requests_total{endpoint="evaluation",status="401"}'] == 1
    assert found['zerotrust_http_request_duration_seconds_count{endpoint="evaluation"}'] == 4
    assert (
        found['zerotrust_http_request_duration_seconds_bucket{endpoint="evaluation",le="+Inf"}']
        == 4
    )
    assert found["zerotrust_decision_duration_seconds_count"] == 2
    assert found["zerotrust_decision_log_failures_total"] == 0
    assert found["process_resident_memory_bytes"] > 0
    assert found[f'zerotrust_process_info{{pid="{os.getpid()}"}}'] == 1
    assert "# TYPE zerotrust_http_request_duration_seconds histogram" in text
    assert text.endswith("\n")


def test_metrics_report_decision_log_failures() -> None:
    class Broken:
        def emit(
            self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]
        ) -> None:
            raise OSError("disk full")

    pdp = PolicyDecisionPoint.from_texts(POLICIES, decision_log=Broken())
    with make_client(pdp) as c:
        assert post(c, "/access/v1/evaluation", req()).json()["decision"] is True
        found = samples(c.get("/metrics", headers=AUTH).text)
        assert found["zerotrust_decision_log_failures_total"] == 1


@pytest.mark.skipif(
    not hasattr(PolicyDecisionPoint, "behavior_failures"), reason="PDP without the count"
)
def test_metrics_report_behavior_store_errors() -> None:
    class BrokenStore:
        def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
            raise OSError("store down")

        def record(self, request: AccessRequest, decision: Decision) -> None:
            raise OSError("store down")

    pdp = PolicyDecisionPoint.from_texts(POLICIES, behavior=BrokenStore())
    with make_client(pdp) as c:
        post(c, "/access/v1/evaluation", req())
        text = c.get("/metrics", headers=AUTH).text
    # features failed (record may be skipped, then)
    assert samples(text)["zerotrust_behavior_store_errors_total"] >= 1


# --- failures inside the server ------------------------------------------------------


class SlowPDP(PolicyDecisionPoint):
    def evaluate(self, request: Any, *, explain: bool = False, extra: Any = None) -> Decision:
        time.sleep(0.15)
        return super().evaluate(request, explain=explain, extra=extra)


class BrokenPDP(PolicyDecisionPoint):
    def evaluate(self, request: Any, *, explain: bool = False, extra: Any = None) -> Decision:
        raise KeyError("bug")


def test_request_timeout_is_503() -> None:
    pdp = SlowPDP(PolicyDecisionPoint.from_texts(POLICIES).policies)
    with make_client(pdp, request_timeout=0.05) as c:
        r = post(c, "/access/v1/evaluation", req())
        assert r.status_code == 503
        batch = {"evaluations": [req()] * 20}
        started = time.monotonic()
        assert post(c, "/access/v1/evaluations", batch).status_code == 503
        assert time.monotonic() - started < 1.0


def test_unexpected_error_is_500_without_details(caplog: pytest.LogCaptureFixture) -> None:
    pdp = BrokenPDP(PolicyDecisionPoint.from_texts(POLICIES).policies)
    with make_client(pdp) as c:
        r = post(c, "/access/v1/evaluation", req(), **{"x-request-id": "r-500"})
        assert (r.status_code, r.text) == (500, "internal error")
        assert r.headers["x-request-id"] == "r-500"
        metrics = c.get("/metrics", headers=AUTH).text
    assert 'endpoint="evaluation",status="500"} 1' in metrics
    assert "internal error in evaluation" in caplog.text


def test_invalid_entities_in_policy_data_fail_at_start() -> None:
    texts = dict(POLICIES)
    texts["entities.data.yaml"] = "entities:\n  subjects: [alice]\n  actions: {doc: read}\n"
    with pytest.raises(ServerConfigError, match="must map a type") as info:
        create_app(
            PolicyDecisionPoint.from_texts(texts), config=ServerConfig(bearer_secrets=(SECRET,))
        )
    assert len(info.value.problems) == 2


def test_entities_file_replaces_the_policy_data(tmp_path: Any) -> None:
    file = tmp_path / "entities.yaml"
    file.write_text("subjects:\n  user:\n    u-2: {}\n", encoding="utf-8")
    body = {
        "subject": {"type": "user"},
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d-2", "properties": {"owner": "u-2"}},
    }
    with make_client(entities_file=str(file)) as c:
        results = post(c, "/access/v1/search/subject", body).json()["results"]
    assert results == [{"type": "user", "id": "u-2"}]


def test_the_shipped_examples_load() -> None:
    for name in ("authzen-certification", "authzen-gateway", "authzen-search"):
        pdp = PolicyDecisionPoint.from_path(ROOT / "examples" / name)
        create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,)))


class _Store:
    """A behaviour store double whose ping answers as told (the features are empty)."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        return {}

    def record(self, request: AccessRequest, decision: Decision) -> None:
        return None

    def ping(self) -> bool:
        if isinstance(self.answer, BaseException):
            raise self.answer
        if self.answer == "hang":
            time.sleep(3)
        return bool(self.answer)


def test_readyz_is_ready_with_policies_and_a_store_that_answers() -> None:
    with make_client(PolicyDecisionPoint.from_texts(POLICIES, behavior=_Store(True))) as c:
        r = c.get("/readyz")
        assert r.status_code == 200 and r.json()["status"] == "ready"
        assert r.json()["checks"] == {"policies": "ok", "behavior_store": "ok"}
        assert r.json()["revision"].startswith("sha256:")
    with make_client() as c:  # the memory store has nothing to ping
        assert c.get("/readyz").json()["checks"] == {"policies": "ok"}


@pytest.mark.parametrize("answer", [False, OSError("connection refused"), "hang"])
def test_readyz_is_not_ready_while_the_store_does_not_answer(answer: Any) -> None:
    pdp = PolicyDecisionPoint.from_texts(POLICIES, behavior=_Store(answer))
    with make_client(pdp) as c:
        began = time.monotonic()
        r = c.get("/readyz")
        assert time.monotonic() - began < 2.5  # the probe's own deadline, not the ping's
        assert r.status_code == 503 and r.json()["status"] == "not ready"
        assert r.json()["checks"]["behavior_store"] == "not answering"
        assert c.get("/healthz").status_code == 200  # liveness is not readiness


def test_readyz_can_leave_the_store_out() -> None:
    pdp = PolicyDecisionPoint.from_texts(POLICIES, behavior=_Store(False))
    app = create_app(pdp, config=ServerConfig(bearer_secrets=(SECRET,)), ready_needs_store=False)
    with TestClient(app) as c:
        assert c.get("/readyz").status_code == 200
