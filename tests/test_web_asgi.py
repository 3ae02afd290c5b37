"""The ASGI middleware through Starlette's TestClient and FastAPI, with real signed JWTs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient
from web_helpers import (
    CUSTOMERS,
    TOKENIZER,
    WATERMARK_POLICY,
    RecordingLog,
    attestation,
    bearer,
    django_urls,
    resolve,
    rogue_key,
    shipped_pdp,
    token,
    web_config,
)

from zerotrust import DecisionUnavailableError, PolicyDecisionPoint
from zerotrust.web import HttpRequest, RouteTable, Target, WebConfig, parse_challenges
from zerotrust.web.asgi import ZeroTrustMiddleware, access_request_of, decision_of
from zerotrust.web.errors import NoDecisionError, WebConfigError

CALLS: list[str] = []
ROUTE = {"GET /customers/{id}": ("customer_record", "read")}


async def read_customer(request: Request) -> Response:
    CALLS.append(request.url.path)
    record = CUSTOMERS.get(request.path_params["id"])
    if record is None:
        return JSONResponse({"detail": "not found"}, status_code=404)
    headers = {"x-decision-id": decision_of(request).decision_id}
    return JSONResponse(record, headers=headers)


async def update_customer(request: Request) -> Response:
    CALLS.append(request.url.path)
    return JSONResponse(CUSTOMERS[request.path_params["id"]])


async def export(request: Request) -> Response:
    async def chunks() -> AsyncIterator[bytes]:
        records = [r for r in CUSTOMERS.values() if r["owner_dept"] == "support"]
        text = json.dumps({"records": records})
        for i in range(0, len(text), 50):
            yield text[i : i + 50].encode()

    return StreamingResponse(chunks(), media_type="application/json")


def app(config: WebConfig | None = None, pdp: PolicyDecisionPoint | None = None) -> Starlette:
    inner = Starlette(
        routes=[
            Route("/customers/{id}", read_customer),
            Route("/customers/{id}", update_customer, methods=["PATCH"]),
            Route("/departments/{dept}/export", export),
            Route("/health", lambda request: PlainTextResponse("ok")),
        ]
    )
    inner.add_middleware(
        ZeroTrustMiddleware,
        pdp=pdp or shipped_pdp(),
        resolve=resolve,
        config=config or web_config(),
    )
    return inner


@pytest.fixture
def log() -> RecordingLog:
    return RecordingLog()


@pytest.fixture
def client(log: RecordingLog) -> TestClient:
    CALLS.clear()
    return TestClient(app(pdp=shipped_pdp(log)), client=("10.1.2.3", 50000))


def test_allow_masks_fields_and_exposes_the_decision(client: TestClient, log: RecordingLog) -> None:
    r = client.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200
    body = r.json()
    assert body["card_number"] == "****" and body["ssn"] == "****"
    assert body["email"] == "ada@example.com"
    assert r.headers["content-length"] == str(len(r.content))
    decision, request, extra = log.last
    assert r.headers["x-decision-id"] == decision.decision_id
    assert request.subject.id == "u-anna" and request.context["ip"] == "10.1.2.3"
    # the route template, not the raw path: no path parameter is copied into extra
    assert extra["http"] == {
        "method": "GET",
        "path": "/customers/{id}",
        "route": "GET /customers/{id}",
    }


def test_manager_sees_fields_in_full(client: TestClient) -> None:
    r = client.get("/customers/c-1001", headers=bearer(roles=("manager",)))
    assert r.status_code == 200 and r.json()["card_number"] == "4111111111111111"


def test_step_up_is_an_rfc_9470_challenge(client: TestClient, log: RecordingLog) -> None:
    r = client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
    assert r.status_code == 401
    [challenge] = parse_challenges(r.headers["www-authenticate"])
    assert challenge.scheme == "bearer"
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert challenge.params["acr_values"] == "urn:example:loa:2"
    assert challenge.params["max_age"] == "3600"
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "step_up_required" and body["max_age"] == 3600
    assert body["decision_id"] == log.last[0].decision_id
    assert CALLS == []


def test_deny_is_problem_json_without_rule_internals(client: TestClient, log: RecordingLog) -> None:
    r = client.get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["status"] == 403 and body["code"] == "access_denied"
    assert body["decision_id"] == log.last[0].decision_id
    assert "deny-other-department" not in r.text and "reasons" not in body
    assert CALLS == []


def test_reasons_only_when_configured(log: RecordingLog) -> None:
    c = TestClient(app(web_config(expose_reasons=True), shipped_pdp(log)))
    body = c.get("/customers/c-5150", headers=bearer()).json()
    assert "customer-records/deny-other-department" in [r["rule"] for r in body["reasons"]]


@pytest.mark.parametrize(
    "headers",
    [
        bearer(token(key=rogue_key())),  # signed by someone else
        bearer(token(exp=1)),  # expired
        bearer(token(aud="another-api")),
        {"authorization": "Bearer not.a.jwt"},
    ],
    ids=["forged-signature", "expired", "wrong-audience", "garbage"],
)
def test_invalid_token_is_401_invalid_token(
    client: TestClient, log: RecordingLog, headers: dict[str, str]
) -> None:
    r = client.get("/customers/c-1001", headers=headers)
    assert r.status_code == 401
    [challenge] = parse_challenges(r.headers["www-authenticate"])
    assert challenge.params["error"] == "invalid_token"
    assert r.json()["code"] == "invalid_token"
    _, request, extra = log.last
    assert request.subject.type == "anonymous"
    assert extra["enforcement"] != "allow" and extra["http"]["method"] == "GET"
    assert CALLS == []


def test_missing_token_is_a_bare_bearer_challenge(client: TestClient) -> None:
    for headers in ({}, {"authorization": "Basic dXNlcjpwdw=="}):
        r = client.get("/customers/c-1001", headers=headers)
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"


def test_forged_forwarded_for_from_untrusted_peer_is_ignored(log: RecordingLog) -> None:
    c = TestClient(app(pdp=shipped_pdp(log)), client=("203.0.113.9", 1234))
    c.get(
        "/customers/c-1001", headers={**bearer(), "x-forwarded-for": "10.1.2.3", "x-country": "DE"}
    )
    _, request, _ = log.last
    assert request.context["ip"] == "203.0.113.9"
    assert "country" not in request.context
    assert "non-corporate-network" in log.last[0].risk.signals


def test_forwarded_for_and_country_from_trusted_proxy(log: RecordingLog) -> None:
    config = web_config(trusted_proxies=["192.0.2.10/32"])
    c = TestClient(app(config, shipped_pdp(log)), client=("192.0.2.10", 1234))
    c.get(
        "/customers/c-1001", headers={**bearer(), "x-forwarded-for": "10.9.8.7", "x-country": "us"}
    )
    _, request, _ = log.last
    assert request.context["ip"] == "10.9.8.7" and request.context["country"] == "US"
    assert "foreign-country" in log.last[0].risk.signals


def test_underscore_spelt_forwarded_headers_cannot_pose_as_the_proxys(log: RecordingLog) -> None:
    # ASGI servers hand header names over as sent: `X_Forwarded_For` is another header,
    # never the proxy's `X-Forwarded-For`, wherever the client puts it.
    config = web_config(trusted_proxies=["192.0.2.10/32"])
    c = TestClient(app(config, shipped_pdp(log)), client=("192.0.2.10", 1234))
    spoofs = {"x_forwarded_for": "10.9.8.7", "X_Country": "DE"}
    for headers in (
        {**bearer(), **spoofs, "x-forwarded-for": "198.51.100.7", "x-country": "us"},
        {**bearer(), "x-forwarded-for": "198.51.100.7", "x-country": "us", **spoofs},
    ):
        c.get("/customers/c-1001", headers=headers)
        _, request, _ = log.last
        assert request.context["ip"] == "198.51.100.7" and request.context["country"] == "US"


def test_unmatched_routes_are_denied_by_default_and_logged(
    client: TestClient, log: RecordingLog
) -> None:
    r = client.get("/health", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "unmatched_route"
    _, request, extra = log.last
    assert request.resource.type == "zerotrust:unmatched_route"
    assert extra["enforcement"] == "unmatched_route"


def test_unmatched_routes_can_pass() -> None:
    c = TestClient(app(web_config(unmatched="pass")))
    assert c.get("/health").text == "ok"


def test_device_attestation_is_verified(client: TestClient, log: RecordingLog) -> None:
    client.get(
        "/customers/c-1001", headers={**bearer(), "x-device-attestation": attestation("u-anna")}
    )
    assert log.last[1].device["managed"] is True and log.last[1].device["verified"] is True
    # an attestation for another user vouches for nothing
    client.get(
        "/customers/c-1001", headers={**bearer(), "x-device-attestation": attestation("u-eve")}
    )
    assert log.last[1].device["managed"] is False and log.last[1].device["error"]


def test_streamed_export_is_tokenized_masked_and_relengthed(client: TestClient) -> None:
    headers = {
        **bearer(sub="u-max", roles=("manager",)),
        "x-device-attestation": attestation("u-max"),
    }
    r = client.get("/departments/support/export", headers=headers)
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    assert {x["email"] for x in records} == {
        TOKENIZER.token("ada@example.com"),
        TOKENIZER.token("bo@example.com"),
    }
    assert all(x["card_number"] == "****" for x in records)
    assert "4111111111111111" not in r.text
    assert r.headers["content-length"] == str(len(r.content))


def test_unknown_obligation_fails_closed_before_the_app_runs(log: RecordingLog) -> None:
    CALLS.clear()
    c = TestClient(app(pdp=shipped_pdp(log, extra=WATERMARK_POLICY)))
    r = c.patch("/customers/c-1001", headers=bearer(), json={"name": "x"})
    assert r.status_code == 403 and r.json()["code"] == "obligation_unsupported"
    assert r.json()["decision_id"] == log.last[0].decision_id
    assert CALLS == []


def test_handled_obligations_are_left_to_the_app() -> None:
    config = web_config(handled_obligations={"watermark"})
    c = TestClient(app(config, shipped_pdp(extra=WATERMARK_POLICY)))
    assert c.patch("/customers/c-1001", headers=bearer(), json={}).status_code == 200


def test_tokenize_without_a_tokenizer_fails_closed() -> None:
    c = TestClient(app(web_config(tokenizer=None)))
    headers = {
        **bearer(sub="u-max", roles=("manager",)),
        "x-device-attestation": attestation("u-max"),
    }
    r = c.get("/departments/support/export", headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "obligation_unsupported"


MASK_ALL = """
policy: p
target: {resources: [doc], actions: [read]}
rules:
  - id: allow
    effect: allow
    obligations: [{type: mask, fields: [secret]}, {type: limit, max: 2}]
"""


def doc_app(endpoint: Any, **config: Any) -> TestClient:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": MASK_ALL})
    cfg = WebConfig(identify=lambda http: {"id": "u"}, **config)
    inner = Starlette(routes=[Route("/doc", endpoint)])
    inner.add_middleware(
        ZeroTrustMiddleware, pdp=pdp, resolve={"GET /doc": ("doc", "read")}, config=cfg
    )
    return TestClient(inner)


def test_non_json_response_with_obligations_is_withheld() -> None:
    c = doc_app(lambda request: PlainTextResponse("secret=hunter2"))
    r = c.get("/doc")
    assert r.status_code == 500 and "hunter2" not in r.text
    assert r.json()["code"] == "obligation_failed"


def test_oversized_and_compressed_responses_are_withheld() -> None:
    big = doc_app(lambda request: JSONResponse({"secret": "x" * 100}), max_body_bytes=50)
    assert big.get("/doc").status_code == 500
    gz = doc_app(
        lambda request: Response(
            b"{}", media_type="application/json", headers={"content-encoding": "gzip"}
        )
    )
    assert gz.get("/doc").status_code == 500


def test_limit_applies_to_list_responses() -> None:
    c = doc_app(lambda request: JSONResponse([{"secret": i} for i in range(5)]))
    assert c.get("/doc").json() == [{"secret": "****"}, {"secret": "****"}]


@pytest.mark.parametrize(
    "body",
    [{"results": list(range(10))}, {"secret": 1}, None, "text"],
    ids=["list-under-another-key", "one-object", "null", "string"],
)
def test_limit_on_a_response_without_a_list_to_cut_is_withheld_not_released_whole(
    body: Any,
) -> None:
    r = doc_app(lambda request: JSONResponse(body)).get("/doc")
    assert r.status_code == 500 and r.json()["code"] == "obligation_failed"
    assert "results" not in r.text


def test_obligations_can_be_left_to_the_handler() -> None:
    c = doc_app(lambda request: JSONResponse({"secret": "s"}), apply_obligations=False)
    assert c.get("/doc").json() == {"secret": "s"}


def test_async_resolver_and_custom_identify() -> None:
    async def resolve_async(http: HttpRequest) -> Target | None:
        return Target("doc", "read") if http.path == "/doc" else None

    async def endpoint(request: Request) -> Response:
        return JSONResponse([{"who": access_request_of(request).subject.id, "secret": 1}])

    pdp = PolicyDecisionPoint.from_texts({"p.yaml": MASK_ALL})
    cfg = WebConfig(identify=lambda http: {"id": http.header("x-user") or "nobody"})
    inner = Starlette(routes=[Route("/doc", endpoint)])
    inner.add_middleware(ZeroTrustMiddleware, pdp=pdp, resolve=resolve_async, config=cfg)
    assert TestClient(inner).get("/doc", headers={"x-user": "ann"}).json() == [
        {"who": "ann", "secret": "****"}
    ]


def test_decision_helper_without_middleware() -> None:
    with pytest.raises(NoDecisionError):
        decision_of({"type": "http", "state": {}})
    with pytest.raises(NoDecisionError):
        access_request_of(object())


def test_fastapi_integration() -> None:
    api = FastAPI()
    api.add_middleware(ZeroTrustMiddleware, pdp=shipped_pdp(), resolve=resolve, config=web_config())

    @api.get("/customers/{id}")
    def get_customer(id: str, request: Request) -> dict[str, Any]:
        return {**CUSTOMERS[id], "decision": decision_of(request).effect.value}

    c = TestClient(api, client=("10.1.2.3", 1))
    r = c.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json()["ssn"] == "****" and r.json()["decision"] == "allow"
    assert c.get("/customers/c-1002", headers=bearer(amr=("pwd",))).status_code == 401
    assert c.get("/customers/c-5150", headers=bearer()).status_code == 403
    assert c.get("/docs", headers=bearer()).status_code == 403  # unmatched: denied
    assert c.get("/docs").status_code == 401  # ... after authentication


PRIVATE_ONLY = """
policy: private-networks-only
target: {resources: [doc], actions: [read]}
rules:
  - id: deny-public-address
    effect: deny
    when: "!ip_is_private(context.ip)"
  - id: allow
    effect: allow
"""


def private_only_app(log: RecordingLog, trusted: str) -> Starlette:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": PRIVATE_ONLY}, decision_log=log)
    cfg = WebConfig(identify=lambda http: {"id": "u"}, trusted_proxies=[trusted])
    inner = Starlette(routes=[Route("/doc", lambda request: PlainTextResponse("ok"))])
    inner.add_middleware(
        ZeroTrustMiddleware, pdp=pdp, resolve={"GET /doc": ("doc", "read")}, config=cfg
    )
    return inner


@pytest.mark.parametrize("trusted", ["10.0.0.0/8", "::ffff:10.0.0.0/104"])
@pytest.mark.parametrize("peer", ["10.0.0.5", "::ffff:10.0.0.5", "::ffff:a00:5"])
def test_dual_stack_proxy_cannot_make_a_public_client_private(
    log: RecordingLog, trusted: str, peer: str
) -> None:
    # The reported input: peer ::ffff:10.0.0.5 was not recognised as the 10/8 proxy, so
    # context.ip became the proxy's private address and the public client was allowed.
    c = TestClient(private_only_app(log, trusted), client=(peer, 1234))
    r = c.get("/doc", headers={"x-forwarded-for": "8.8.4.4"})
    assert r.status_code == 403
    assert log.last[1].context["ip"] == "8.8.4.4"


def test_request_from_the_proxy_itself_has_no_client_address(log: RecordingLog) -> None:
    c = TestClient(private_only_app(log, "10.0.0.0/8"), client=("::ffff:10.0.0.5", 1234))
    assert c.get("/doc").status_code == 403  # unknown address: the deny rule errors, denies
    assert "ip" not in log.last[1].context


def test_mounted_app_is_decided_on_the_path_it_routes(log: RecordingLog) -> None:
    # Under a root_path the app routes on the path below it; so does the route table.
    inner = app(pdp=shipped_pdp(log))
    c = TestClient(inner, root_path="/api", client=("10.1.2.3", 1))
    r = c.get("/api/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    assert (
        log.last[1].resource.id == "c-1001" and log.last[1].context["path"] == "/customers/c-1001"
    )
    assert c.get("/api/customers/c-5150", headers=bearer()).status_code == 403
    mounted = Starlette(routes=[Mount("/api", app=inner)])
    c = TestClient(mounted, client=("10.1.2.3", 1))
    assert c.get("/api/customers/c-1001", headers=bearer()).json()["ssn"] == "****"
    assert c.get("/api/customers/c-5150", headers=bearer()).status_code == 403


def test_resolver_answer_that_is_not_a_target_is_refused() -> None:
    for odd in ({"resource_type": "doc"}, False, "doc"):
        inner = Starlette(routes=[Route("/doc", lambda request: PlainTextResponse("secret"))])
        inner.add_middleware(
            ZeroTrustMiddleware,
            pdp=PolicyDecisionPoint.from_texts({"p.yaml": MASK_ALL}),
            resolve=lambda http, odd=odd: odd,
            config=WebConfig(identify=lambda http: {"id": "u"}, unmatched="pass"),
        )
        with pytest.raises(WebConfigError, match="Target or None"):
            TestClient(inner).get("/doc")


def test_async_resolver_answer_that_is_not_a_target_is_refused() -> None:
    async def odd(http: HttpRequest) -> Any:
        async def later() -> Target:
            return Target("doc", "read")

        return later()  # an awaitable inside an awaitable

    inner = Starlette(routes=[Route("/doc", lambda request: PlainTextResponse("secret"))])
    inner.add_middleware(
        ZeroTrustMiddleware,
        pdp=PolicyDecisionPoint.from_texts({"p.yaml": MASK_ALL}),
        resolve=odd,
        config=WebConfig(identify=lambda http: {"id": "u"}),
    )
    with pytest.raises(WebConfigError, match="coroutine"):
        TestClient(inner).get("/doc")


class LookupDown(RuntimeError):
    pass


def test_resolver_or_lookup_that_raises_never_reaches_the_app() -> None:
    def down(kind: str, rid: str | None, http: HttpRequest) -> Any:
        raise LookupDown("database unavailable")

    for resolver in (lambda http: down("", None, http), RouteTable(ROUTE, properties=down)):
        CALLS.clear()
        inner = Starlette(routes=[Route("/customers/{id}", read_customer)])
        inner.add_middleware(
            ZeroTrustMiddleware, pdp=shipped_pdp(), resolve=resolver, config=web_config()
        )
        with pytest.raises(LookupDown):
            TestClient(inner).get("/customers/c-1001", headers=bearer())
        assert CALLS == []


def test_properties_lookup_answer_that_is_not_a_mapping_is_refused() -> None:
    async def odd(kind: str, rid: str | None, http: HttpRequest) -> Any:
        return [("owner_dept", "support")]

    inner = Starlette(routes=[Route("/customers/{id}", read_customer)])
    inner.add_middleware(
        ZeroTrustMiddleware,
        pdp=shipped_pdp(),
        resolve=RouteTable(ROUTE, properties=odd),
        config=web_config(),
    )
    with pytest.raises(WebConfigError, match="not a mapping"):
        TestClient(inner).get("/customers/c-1001", headers=bearer())


def test_raw_path_is_logged_only_when_asked(log: RecordingLog) -> None:
    c = TestClient(app(web_config(log_path="raw"), shipped_pdp(log)), client=("10.1.2.3", 1))
    c.get("/customers/c-1001", headers=bearer())
    assert log.last[2]["http"]["path"] == "/customers/c-1001"
    c = TestClient(app(pdp=shipped_pdp(log)), client=("10.1.2.3", 1))
    c.get("/nowhere/secret-token", headers=bearer())
    assert "path" not in log.last[2]["http"] and "secret-token" not in str(log.last[2])
    with pytest.raises(WebConfigError, match="log_path"):
        web_config(log_path="template")


# --- methods: a route matches only a method every framework reads alike -----------------


async def _raw_call(app: Any, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
    """One HTTP request as a server hands it over, method spelt as the client sent it
    (httpx, under the TestClient, upper-cases every method)."""
    incoming = [{"type": "http.request", "body": b"", "more_body": False}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if incoming:
            return incoming.pop(0)
        await asyncio.Event().wait()  # the client stays until the response is sent
        raise AssertionError("unreachable")  # pragma: no cover

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        "client": ("10.1.2.3", 50000),
        "server": ("testserver", 80),
    }
    await app(scope, receive, send)
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return sent[0]["status"], body


def test_lowercase_get_does_not_pass_undecided_to_django_which_serves_it_as_get(
    log: RecordingLog,
) -> None:
    # unmatched="pass" in front of Django's ASGI handler: `get` matched no route, passed
    # undecided, and Django (which upper-cases the method) served the record, unmasked,
    # to a client with no token at all.
    from django.core.handlers.asgi import ASGIHandler
    from django.http import HttpRequest as DjangoRequest
    from django.http import JsonResponse
    from django.urls import path

    served: list[str] = []

    def customer(req: DjangoRequest, id: str) -> JsonResponse:
        served.append(f"{req.method} {id}")
        return JsonResponse(CUSTOMERS[id])

    with django_urls([path("customers/<str:id>", customer)]):
        middleware = ZeroTrustMiddleware(
            ASGIHandler(), shipped_pdp(log), resolve=resolve, config=web_config(unmatched="pass")
        )
        status, body = asyncio.run(_raw_call(middleware, "get", "/customers/c-1001", {}))
        assert status == 401 and b"4111" not in body and served == []
        status, body = asyncio.run(_raw_call(middleware, "get", "/customers/c-1001", bearer()))
        assert status == 403 and json.loads(body)["code"] == "unmatched_route" and served == []
        status, body = asyncio.run(_raw_call(middleware, "GET", "/customers/c-1001", bearer()))
        assert status == 200 and json.loads(body)["card_number"] == "****"
        assert served == ["GET c-1001"]


@pytest.mark.parametrize("method", ["get", "Get", "pATCH"])
def test_lowercase_method_is_refused_by_starlette_apps_too(log: RecordingLog, method: str) -> None:
    status, body = asyncio.run(
        _raw_call(app(pdp=shipped_pdp(log)), method, "/customers/c-1001", bearer())
    )
    assert status == 403 and json.loads(body)["code"] == "unmatched_route"
    assert log.last[1].action.name == f"http:{method}"


@pytest.mark.parametrize(
    ("headers", "code", "why"),
    [
        ({}, "missing_token", "missing_token"),
        ({"authorization": "Basic dTpw"}, "missing_token", "missing_token"),
        (bearer(token(exp=1)), "invalid_token", "expired"),
        (bearer(token(key=rogue_key())), "invalid_token", "invalid_signature"),
    ],
    ids=["none", "other-scheme", "expired", "forged"],
)
def test_with_reasons_exposed_a_token_refusal_says_why_the_token_failed(
    headers: dict[str, str], code: str, why: str
) -> None:
    """Debug mode tells the developer what to fix: the token, not the policies' view of
    the anonymous request it became."""
    client = TestClient(app(config=web_config(expose_reasons=True)))
    body = client.get("/customers/c-1001", headers=headers).json()
    assert body["code"] == code and body["token_error"] == why
    assert "reasons" not in body
    plain = TestClient(app()).get("/customers/c-1001", headers=headers).json()
    assert plain["code"] == code and "token_error" not in plain


class _Unreachable:
    """A DecisionPoint whose every call fails as a remote PDP that is down does."""

    def evaluate(self, request: Any, *, extra: Any = None) -> Any:
        raise DecisionUnavailableError("the PDP did not answer")

    async def evaluate_async(self, request: Any, *, extra: Any = None) -> Any:
        raise DecisionUnavailableError("the PDP did not answer")


def test_no_decision_is_a_503_and_the_app_never_runs() -> None:
    CALLS.clear()
    client = TestClient(app(pdp=_Unreachable()))  # type: ignore[arg-type]
    r = client.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 503 and r.headers["retry-after"] == "1"
    assert r.json()["code"] == "pdp_unavailable" and CALLS == []
