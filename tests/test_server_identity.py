"""The AuthZEN server verifying the user token a PEP forwards (issue 7: identity).

TestClient for the request mapping, the refusals and their metrics; one live uvicorn
on 127.0.0.1 whose issuer keys come from a JWKS served on 127.0.0.1 too.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import ECAlgorithm
from jwt_helpers import (
    ISSUER,
    KEYS,
    NOW,
    T,
    claims,
    read,
    rs256,
    rsa_public_jwk,
    token,
)
from metrics_helpers import samples
from starlette.testclient import TestClient

from zerotrust import JsonLinesLog, PolicyDecisionPoint
from zerotrust.server import (
    DeviceConfig,
    IdentityConfig,
    ServerConfig,
    ServerConfigError,
    create_app,
    load_config,
)
from zerotrust.server.identity import build_identity
from zerotrust.server.settings import config_from_mapping

if not KEYS.is_dir():
    pytest.skip(f"shared conformance keys not found at {KEYS}", allow_module_level=True)

SECRET = "identity-test-secret-0123456789"
AUTH = {"authorization": f"Bearer {SECRET}"}
USER = "someone@example.net"
MDM = "https://mdm.example.com"
EVALUATION = "/access/v1/evaluation"
EVALUATIONS = "/access/v1/evaluations"

POLICIES = {
    "docs.yaml": """
policy: docs
target: {resources: [doc]}
rules:
  - id: allow-owner-purchasers
    effect: allow
    when: >-
      'purchase' in subject.properties.scopes
      && resource.properties.owner == subject.id
    reason: owners with the purchase scope
""",
    "vault.yaml": """
policy: vault
target: {resources: [vault]}
rules:
  - id: allow-managed
    effect: allow
    when: "device.verified && device.managed"
""",
    "entities.data.yaml": f"""
entities:
  resources:
    doc:
      d-1: {{owner: "{USER}"}}
      d-2: {{owner: someone-else}}
      d-3: {{owner: "{USER}"}}
  actions:
    doc: [read, write]
""",
}


# --- tokens and keys ---------------------------------------------------------------


def good() -> str:
    return rs256(claims(aud="zerotrust"))


BAD_TOKENS = {
    "expired": rs256(claims(aud="zerotrust", exp=T - 3600)),
    "wrong_audience": rs256(claims(aud="https://elsewhere.example")),
    "invalid_signature": rs256(claims(aud="zerotrust"))[:-6] + "AAAAAA",
    "invalid_token": "not-a-jwt",
    "untrusted_issuer": rs256(claims(aud="zerotrust", iss="https://evil.example")),
}


def mdm_key() -> Any:
    return serialization.load_pem_private_key(read("testkey_ec.priv"), None)


def mdm_jwks() -> dict[str, Any]:
    public = serialization.load_pem_public_key(read("testkey_ec.pub"))
    jwk = ECAlgorithm.to_jwk(public, as_dict=True)
    return {"keys": [{**jwk, "kid": "mdm-1"}]}


def attestation(**over: Any) -> str:
    body: dict[str, Any] = {
        "iss": MDM,
        "sub": "dev-42",
        "iat": T - 60,
        "exp": T + 3600,
        "user_sub": USER,
        "managed": True,
        "compliant": True,
        **over,
    }
    header = {"alg": "ES256", "kid": "mdm-1", "typ": "device-attestation+jwt"}
    return token(header, body, "ES256", mdm_key())


def write_jwks(tmp_path: Path) -> tuple[Path, Path]:
    idp, mdm = tmp_path / "idp-jwks.json", tmp_path / "mdm-jwks.json"
    idp.write_text(json.dumps({"keys": [rsa_public_jwk()]}), encoding="utf-8")
    mdm.write_text(json.dumps(mdm_jwks()), encoding="utf-8")
    return idp, mdm


def identity_config(tmp_path: Path) -> IdentityConfig:
    idp, mdm = write_jwks(tmp_path)
    return IdentityConfig(
        issuer=ISSUER,
        audiences=["zerotrust", "other-api"],
        jwks_file=str(idp),
        algorithms=["RS256"],
        leeway=0,
        device=DeviceConfig(issuer=MDM, jwks_file=str(mdm), max_age=600),
    )


# --- the app -------------------------------------------------------------------------


class Server:
    """A TestClient over an identity-verifying PDP that logs decisions to a file."""

    def __init__(self, tmp_path: Path, **config: Any) -> None:
        self.log_path = tmp_path / "decisions.jsonl"
        self.log = JsonLinesLog(self.log_path)
        identity = config.pop("identity", None) or identity_config(tmp_path)
        self.config = ServerConfig(bearer_secrets=(SECRET,), identity=identity, **config)
        self.pdp = PolicyDecisionPoint.from_texts(
            POLICIES,
            clock=lambda: NOW,
            decision_log=self.log,
            identity=build_identity(identity),
        )
        self.client = TestClient(create_app(self.pdp, config=self.config), headers=AUTH)

    def post(self, path: str, body: Any, **headers: str) -> httpx.Response:
        return self.client.post(path, json=body, headers=headers)

    def ok(self, path: str, body: Any, **headers: str) -> Any:
        response = self.post(path, body, **headers)
        assert response.status_code == 200, response.text
        return response.json()

    def log_text(self) -> str:
        self.log.close()
        return self.log_path.read_text(encoding="utf-8")

    def close(self) -> None:
        self.client.close()
        self.log.close()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    s = Server(tmp_path)
    yield s
    s.close()


def subject(tok: str | None = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = dict(fields)
    if tok is not None:
        out["properties"] = {"token": tok}
    return out


def request(subj: dict[str, Any] | None, owner: str = USER, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d-1", "properties": {"owner": owner}},
    }
    if subj is not None:
        body["subject"] = subj
    body.update(over)
    return body


def code_of(body: Any) -> str:
    error = body["context"]["error"]
    assert set(error) == {"code"}
    return str(error["code"])


# --- single evaluations ------------------------------------------------------------


def test_a_valid_token_is_decided_by_the_policies(server: Server) -> None:
    allowed = server.ok(EVALUATION, request(subject(good(), type="user", id=USER)))
    assert allowed["decision"] is True
    assert allowed["context"]["effect"] == "allow"
    denied = server.ok(EVALUATION, request(subject(good()), owner="someone-else"))
    assert denied["decision"] is False
    assert denied["context"]["effect"] == "deny"
    assert "error" not in denied["context"]


@pytest.mark.parametrize("code", sorted(BAD_TOKENS))
def test_a_bad_token_is_false_with_its_code(server: Server, code: str) -> None:
    tok = BAD_TOKENS[code]
    response = server.post(EVALUATION, request(subject(tok, type="user")))
    assert response.status_code == 200
    assert response.json() == {"decision": False, "context": {"error": {"code": code}}}
    assert tok not in response.text


@pytest.mark.parametrize(
    "body",
    [
        request(subject(type="user", id=USER)),
        request(subject(type="user", id=USER, properties={"scopes": ["purchase"]})),
        request(None),
    ],
    ids=["asserted-subject", "asserted-properties", "no-subject"],
)
def test_no_token_is_false(server: Server, body: dict[str, Any]) -> None:
    assert code_of(server.ok(EVALUATION, body)) == "missing_token"


def test_the_peps_own_authorization_header_is_never_the_user_token(server: Server) -> None:
    # The PEP authenticates with its secret; a user JWT is never read from Authorization.
    body = server.ok(EVALUATION, request(subject(type="user", id=USER)))
    assert code_of(body) == "missing_token"
    response = server.client.post(
        EVALUATION,
        json=request(subject(type="user", id=USER)),
        headers={"authorization": f"Bearer {good()}"},
    )
    assert response.status_code == 401


@pytest.mark.parametrize(
    "fields",
    [{"type": "user", "id": "mallory@example.net"}, {"type": "service", "id": USER}],
    ids=["id", "type"],
)
def test_a_subject_that_differs_from_the_token_is_false(
    server: Server, fields: dict[str, str]
) -> None:
    body = server.ok(EVALUATION, request(subject(good(), **fields)))
    assert code_of(body) == "subject_mismatch"


def test_a_mismatch_with_an_unreadable_token_reports_the_token_problem(server: Server) -> None:
    body = server.ok(EVALUATION, request(subject("not-a-jwt", type="user", id="mallory")))
    assert code_of(body) == "invalid_token"


def test_the_token_can_be_forwarded_in_a_header(server: Server) -> None:
    subj = subject(type="user", id=USER)
    assert server.ok(EVALUATION, request(subj), **{"x-subject-token": good()})["decision"]
    bearer = server.ok(EVALUATION, request(None), **{"x-subject-token": f"Bearer {good()}"})
    assert bearer["decision"] is True
    expired = server.ok(EVALUATION, request(subj), **{"x-subject-token": BAD_TOKENS["expired"]})
    assert code_of(expired) == "expired"
    # subject.properties.token wins over the header
    both = server.ok(EVALUATION, request(subject(good())), **{"x-subject-token": "garbage"})
    assert both["decision"] is True


def test_a_header_sent_twice_is_a_bad_request(server: Server) -> None:
    response = server.client.post(
        EVALUATION,
        json=request(None),
        headers=[("x-subject-token", good()), ("x-subject-token", good())],
    )
    assert response.status_code == 400
    assert "at most once" in response.text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (request(subject(type="user", properties={"token": 7})), "subject.properties.token"),
        (request(subject(type="user", properties={"token": ""})), "subject.properties.token"),
        (request(subject(good(), type=5)), "subject.type"),
        ({**request(None), "subject": "alice"}, "subject"),
        (request(subject(good()), context={"device": {"attestation": 5}}), "attestation"),
    ],
    ids=["token-number", "token-empty", "type-number", "subject-string", "attestation-number"],
)
def test_wrongly_typed_credentials_are_bad_requests(
    server: Server, body: dict[str, Any], field: str
) -> None:
    response = server.post(EVALUATION, body)
    assert response.status_code == 400
    assert field in response.text


def test_a_verified_device_attestation_reaches_the_policies(server: Server) -> None:
    def vault(context: dict[str, Any] | None) -> Any:
        body = request(subject(good()), resource={"type": "vault", "id": "v-1"})
        if context is not None:
            body["context"] = context
        return server.ok(EVALUATION, body)

    assert vault({"device": {"attestation": attestation(), "ip": "10.0.0.1"}})["decision"]
    assert vault({"device": {"managed": True}})["decision"] is False  # caller-asserted
    assert vault(None)["decision"] is False
    other = vault({"device": {"attestation": attestation(user_sub="mallory")}})
    assert code_of(other) == "subject_mismatch"
    stale = vault({"device": {"attestation": attestation(iat=T - 7200)}})
    assert code_of(stale) == "stale_attestation"


def test_an_attestation_without_a_device_verifier_is_refused(tmp_path: Path) -> None:
    idp, _ = write_jwks(tmp_path)
    config = IdentityConfig(issuer=ISSUER, audiences="zerotrust", jwks_file=str(idp))
    s = Server(tmp_path, identity=config)
    body = request(subject(good()), context={"device": {"attestation": attestation()}})
    try:
        assert code_of(s.ok(EVALUATION, body)) == "not_configured"
    finally:
        s.close()


# --- batches and search ---------------------------------------------------------------


def test_a_batch_with_a_mix(server: Server) -> None:
    body = {
        "subject": subject(good(), type="user", id=USER),
        "action": {"name": "read"},
        "evaluations": [
            {"resource": {"type": "doc", "id": "d-1", "properties": {"owner": USER}}},
            {"resource": {"type": "doc", "id": "d-2", "properties": {"owner": "x"}}},
            {
                "subject": subject(BAD_TOKENS["expired"]),
                "resource": {"type": "doc", "id": "d-1", "properties": {"owner": USER}},
            },
            {
                "subject": subject(type="user", id=USER),
                "resource": {"type": "doc", "id": "d-1", "properties": {"owner": USER}},
            },
            {
                "subject": subject(good(), type="user", id="mallory"),
                "resource": {"type": "doc", "id": "d-1", "properties": {"owner": USER}},
            },
            {"subject": {"type": "user", "properties": {"token": 1}}},
        ],
    }
    results = server.ok(EVALUATIONS, body)["evaluations"]
    assert [r["decision"] for r in results] == [True, False, False, False, False, False]
    assert results[1]["context"]["effect"] == "deny"
    assert [code_of(r) for r in results[2:5]] == ["expired", "missing_token", "subject_mismatch"]
    assert results[5]["context"]["error"]["status"] == 400


def test_a_batch_uses_the_header_token_for_items_without_one(server: Server) -> None:
    body = {
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d-1", "properties": {"owner": USER}},
        "evaluations": [{}, {"subject": subject(BAD_TOKENS["wrong_audience"])}],
    }
    results = server.ok(EVALUATIONS, body, **{"x-subject-token": good()})["evaluations"]
    assert results[0]["decision"] is True
    assert code_of(results[1]) == "wrong_audience"


def test_deny_on_first_deny_stops_at_a_refusal(server: Server) -> None:
    body = {
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d-1", "properties": {"owner": USER}},
        "options": {"evaluations_semantic": "deny_on_first_deny"},
        "evaluations": [{"subject": subject(good())}, {"subject": subject("garbage")}, {}],
    }
    results = server.ok(EVALUATIONS, body)["evaluations"]
    assert len(results) == 2
    assert results[1]["decision"] is False
    assert results[1]["context"]["error"] == {"code": "invalid_token"}
    assert results[1]["context"]["reason"] == "deny_on_first_deny"


def test_resource_and_action_search_with_a_token(server: Server) -> None:
    search = {"subject": subject(good(), type="user", id=USER), "action": {"name": "read"}}
    found = server.ok("/access/v1/search/resource", {**search, "resource": {"type": "doc"}})
    assert found["results"] == [{"type": "doc", "id": "d-1"}, {"type": "doc", "id": "d-3"}]
    page = server.ok(
        "/access/v1/search/resource",
        {**search, "resource": {"type": "doc"}, "page": {"limit": 1}},
        **{"x-subject-token": "ignored: properties.token wins"},
    )
    # A refreshed token keeps the page token valid: the fingerprint leaves it out.
    refreshed = subject(rs256(claims(aud="zerotrust", jti="another")), type="user", id=USER)
    rest = server.ok(
        "/access/v1/search/resource",
        {
            **search,
            "subject": refreshed,
            "resource": {"type": "doc"},
            "page": {"limit": 1, "token": page["page"]["next_token"]},
        },
    )
    assert page["results"] + rest["results"] == found["results"]
    actions = server.ok(
        "/access/v1/search/action",
        {"subject": subject(), "resource": {"type": "doc", "id": "d-3", "properties": {}}},
        **{"x-subject-token": good()},
    )
    assert actions["results"] == []  # d-3's owner is not sent: the policy denies
    actions = server.ok(
        "/access/v1/search/action",
        {"resource": {"type": "doc", "id": "d-3", "properties": {"owner": USER}}},
        **{"x-subject-token": good()},
    )
    assert actions["results"] == [{"name": "read"}, {"name": "write"}]


def test_search_with_a_bad_token_finds_nothing(server: Server) -> None:
    tok = BAD_TOKENS["expired"]
    response = server.post(
        "/access/v1/search/resource",
        {"subject": subject(tok), "action": {"name": "read"}, "resource": {"type": "doc"}},
    )
    assert response.json() == {"context": {"error": {"code": "expired"}}, "results": []}
    assert tok not in response.text
    missing = server.ok(
        "/access/v1/search/action",
        {"subject": subject(type="user", id=USER), "resource": {"type": "doc", "id": "d-1"}},
    )
    assert missing == {"context": {"error": {"code": "missing_token"}}, "results": []}


def test_subject_search_is_refused_and_not_advertised(server: Server) -> None:
    response = server.post(
        "/access/v1/search/subject",
        {
            "subject": {"type": "user"},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "d-1"},
        },
    )
    assert response.status_code == 400
    assert "subject search is not available" in response.text
    metadata = server.client.get("/.well-known/authzen-configuration").json()
    assert "search_subject_endpoint" not in metadata
    assert "search_resource_endpoint" in metadata


# --- metrics, logs ---------------------------------------------------------------------


def test_refusals_are_counted_by_code(server: Server) -> None:
    server.ok(EVALUATION, request(subject(good())))
    for code in ("expired", "expired", "invalid_token"):
        server.ok(EVALUATION, request(subject(BAD_TOKENS[code])))
    server.ok(EVALUATION, request(subject(type="user", id=USER)))
    text = server.client.get("/metrics").text
    found = samples(text)
    assert found['zerotrust_identity_failures_total{code="expired"}'] == 2
    assert found['zerotrust_identity_failures_total{code="invalid_token"}'] == 1
    assert found['zerotrust_identity_failures_total{code="missing_token"}'] == 1
    assert found['zerotrust_decisions_total{effect="allow"}'] == 1
    assert found['zerotrust_decisions_total{effect="deny"}'] == 0


def test_tokens_never_reach_responses_or_logs(
    server: Server, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    device = attestation()
    tokens = [good(), device, *BAD_TOKENS.values()]
    texts: list[str] = []
    for tok in [good(), *BAD_TOKENS.values()]:
        context = {"device": {"attestation": device}}
        texts.append(server.post(EVALUATION, request(subject(tok), context=context)).text)
        texts.append(server.post(EVALUATION, request(None), **{"x-subject-token": tok}).text)
    batch = {
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d-1", "properties": {"owner": USER}},
        "evaluations": [{"subject": subject(t)} for t in tokens],
    }
    texts.append(server.post(EVALUATIONS, batch).text)
    log = server.log_text()
    assert log.count("\n") >= 3  # the good token's decisions were logged
    assert "credentials refused: expired" in caplog.text
    for tok in tokens:
        # A JWT's signature is unique to it; a token-less log cannot contain it.
        secret_part = tok.rsplit(".", 1)[-1]
        for text in [*texts, log, caplog.text]:
            assert tok not in text
            assert secret_part not in text


# --- configuration -----------------------------------------------------------------------


def test_the_config_file_section(tmp_path: Path) -> None:
    idp, mdm = write_jwks(tmp_path)
    path = tmp_path / "server.yaml"
    path.write_text(
        f"""
bearer_secrets: [{SECRET}]
identity:
  issuer: {ISSUER}
  audience: zerotrust
  jwks_file: {idp.name}
  algorithms: [RS256, ES256]
  roles_from: realm_access.roles
  leeway_seconds: 10
  subject_type: identity
  device:
    issuer: {MDM}
    jwks_file: {mdm.name}
    max_age_seconds: 600
""",
        encoding="utf-8",
    )
    config = load_config(path)
    identity = config.identity
    assert identity is not None
    assert identity.audiences == ("zerotrust",)
    assert identity.jwks_file == str(idp)
    assert identity.roles_from == ("realm_access.roles",)
    assert identity.leeway == 10
    assert identity.device is not None
    assert identity.device.jwks_file == str(mdm)
    assert identity.device.max_age == 600
    resolver = build_identity(identity)
    assert resolver.jwt is not None
    assert resolver.jwt.subject_type == "identity"
    assert resolver.device is not None


def test_every_config_problem_is_listed() -> None:
    with pytest.raises(ServerConfigError) as info:
        config_from_mapping(
            {
                "bearer_secrets": [SECRET],
                "identity": {
                    "audience": 5,
                    "jwks_url": "ftp://idp.example.com/certs",
                    "jwks_file": "certs.json",
                    "leeway_seconds": -1,
                    "roles_from": ["", "x"],
                    "colour": "blue",
                    "device": {"jwks_file": "mdm.json", "max_age_seconds": 0, "extra": 1},
                },
            }
        )
    assert sorted(info.value.problems) == sorted(
        [
            "identity.colour: unknown setting",
            "identity.device.extra: unknown setting",
            "identity.device.issuer: is required",
            "identity.device.max_age_seconds: must be a number above 0, not 0",
            "identity.issuer: is required",
            "identity: needs exactly one of jwks_url and jwks_file",
            "identity.jwks_url: must be an https URL (http only to loopback)",
            "identity.leeway_seconds: must be a number >= 0, not -1",
            "identity.audience: must be a non-empty string or a list of non-empty strings, not 5",
            "identity.roles_from[0]: must be a non-empty string, not ''",
        ]
    )
    with pytest.raises(
        ServerConfigError, match="identity: must be a mapping of settings, not 'yes'"
    ):
        config_from_mapping({"bearer_secrets": [SECRET], "identity": "yes"})


def test_every_verifier_problem_is_listed(tmp_path: Path) -> None:
    config = IdentityConfig(
        issuer=ISSUER,
        audiences="zerotrust",
        jwks_url="http://idp.example.com/certs",
        leeway=1000,
        device=DeviceConfig(issuer=MDM, jwks_file=str(tmp_path / "missing.json")),
    )
    with pytest.raises(ServerConfigError) as info:
        build_identity(config)
    problems = info.value.problems
    assert len(problems) == 2
    assert "plain http only to a loopback host" in problems[0]
    assert "cannot read JWKS file" in problems[1]
    assert "FileNotFoundError" in problems[1]
    idp, _ = write_jwks(tmp_path)
    keys = {"issuer": ISSUER, "audiences": "zerotrust", "jwks_file": str(idp)}
    with pytest.raises(ServerConfigError) as info:
        build_identity(IdentityConfig(**keys, algorithms=["HS256"]))
    assert len(info.value.problems) == 1
    assert "HMAC" in info.value.problems[0]
    with pytest.raises(ServerConfigError, match="leeway must be between 0 and 300"):
        build_identity(IdentityConfig(**keys, leeway=1000))


def test_a_pdp_without_identity_is_refused_for_an_identity_config(tmp_path: Path) -> None:
    pdp = PolicyDecisionPoint.from_texts(POLICIES)
    config = ServerConfig(bearer_secrets=(SECRET,), identity=identity_config(tmp_path))
    with pytest.raises(ServerConfigError, match="PDP verifies no identity"):
        create_app(pdp, config=config)


def test_serve_builds_the_verifier_from_the_config(tmp_path: Path) -> None:
    from test_cli import serve_process, zerotrust

    policies = tmp_path / "policies"
    policies.mkdir()
    for name, text in POLICIES.items():
        (policies / name).write_text(text, encoding="utf-8")
    idp, _ = write_jwks(tmp_path)
    path = tmp_path / "server.yaml"
    text = f"bearer_secrets: [{SECRET}]\nidentity: {{issuer: {ISSUER}, audience: zerotrust, "
    path.write_text(text + f"jwks_file: {idp.name}}}\n", encoding="utf-8")
    with (
        serve_process("--policies", str(policies), "--config", str(path)) as url,
        httpx.Client(base_url=url, headers=AUTH, trust_env=False) as client,
    ):
        body = client.post(EVALUATION, json=request(None)).json()
    assert code_of(body) == "missing_token"
    path.write_text(text + "jwks_file: missing.json}\n", encoding="utf-8")
    result = zerotrust("serve", "--policies", str(policies), "--config", str(path))
    assert result.returncode == 2
    assert "cannot read JWKS file" in result.stderr


# --- over real HTTP, keys from a JWKS URL ------------------------------------------------


@contextlib.contextmanager
def jwks_server(document: dict[str, Any]) -> Iterator[tuple[str, list[str]]]:
    """A JWKS endpoint on 127.0.0.1; yields its URL and the paths it was asked for."""
    body = json.dumps(document).encode()
    hits: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/certs", hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@contextlib.contextmanager
def live(app: Any) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(
        app, log_level="warning", lifespan="off", http="h11", ws="none", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    try:
        while not server.started:
            assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.01)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_over_http_with_keys_from_a_jwks_url() -> None:
    with jwks_server({"keys": [rsa_public_jwk()]}) as (url, hits):
        config = config_from_mapping(
            {
                "bearer_secrets": [SECRET],
                "identity": {"issuer": ISSUER, "audience": ["zerotrust"], "jwks_url": url},
            }
        )
        assert config.identity is not None
        pdp = PolicyDecisionPoint.from_texts(
            POLICIES, clock=lambda: NOW, identity=build_identity(config.identity)
        )
        with (
            live(create_app(pdp, config=config)) as base,
            httpx.Client(base_url=base, headers=AUTH, trust_env=False, timeout=30) as client,
        ):
            assert hits == []  # nothing fetched before the first token
            allowed = client.post(EVALUATION, json=request(subject(good(), id=USER)))
            assert allowed.status_code == 200
            assert allowed.json()["decision"] is True
            header = client.post(
                EVALUATION, json=request(None), headers={"x-subject-token": good()}
            )
            assert header.json()["decision"] is True
            bad = client.post(EVALUATION, json=request(subject(BAD_TOKENS["wrong_audience"])))
            assert bad.json() == {
                "decision": False,
                "context": {"error": {"code": "wrong_audience"}},
            }
            other_kid = rs256(claims(aud="zerotrust"), kid="rotated-away")
            unknown = client.post(EVALUATION, json=request(subject(other_kid)))
            assert code_of(unknown.json()) == "unknown_key"
            metrics = client.get("/metrics").text
        assert hits == ["/certs"]  # cached; the unknown kid is rate-limited, not refetched
        assert samples(metrics)['zerotrust_identity_failures_total{code="unknown_key"}'] == 1
