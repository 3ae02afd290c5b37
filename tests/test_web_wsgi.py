"""The WSGI middleware through Flask's test client and a Django WSGI handler."""

from __future__ import annotations

import http.client
import json
import sys
import threading
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from flask import Flask, Response, request
from web_helpers import (
    CUSTOMERS,
    WATERMARK_POLICY,
    RecordingLog,
    assert_invalid_request,
    attestation,
    bearer,
    customer_properties,
    django_urls,
    resolve,
    rogue_key,
    schema_pdp,
    shipped_pdp,
    token,
    web_config,
)
from werkzeug.test import Client

from zerotrust.web import RouteTable, parse_challenges
from zerotrust.web.errors import NoDecisionError, WebConfigError
from zerotrust.web.wsgi import DECISION_KEY, ZeroTrustMiddleware, access_request_of, decision_of

CALLS: list[str] = []


def flask_app(log: RecordingLog, *, extra_policy: str | None = None, **config: Any) -> Flask:
    app = Flask(__name__)

    @app.get("/customers/<id>")
    def read(id: str) -> Any:
        CALLS.append(id)
        return {**CUSTOMERS[id], "decision": decision_of(request).decision_id}

    @app.patch("/customers/<id>")
    def update(id: str) -> Any:
        CALLS.append(id)
        return CUSTOMERS[id]

    @app.get("/departments/<dept>/export")
    def export(dept: str) -> Any:
        records = [r for r in CUSTOMERS.values() if r["owner_dept"] == "support"]
        return Response(
            (json.dumps(records)[i : i + 40] for i in range(0, 2000, 40)),
            mimetype="application/json",
        )

    @app.get("/text/<id>")
    def text(id: str) -> str:
        return "card 4111111111111111"

    app.wsgi_app = ZeroTrustMiddleware(  # type: ignore[method-assign]
        app.wsgi_app,
        shipped_pdp(log, extra=extra_policy),
        resolve=resolve,
        config=web_config(**config),
    )
    return app


@pytest.fixture
def log() -> RecordingLog:
    CALLS.clear()
    return RecordingLog()


@pytest.fixture
def flask_client(log: RecordingLog) -> Any:
    return flask_app(log).test_client()


def test_flask_allow_masks_and_exposes_the_decision(flask_client: Any, log: RecordingLog) -> None:
    r = flask_client.get(
        "/customers/c-1001", headers=bearer(), environ_base={"REMOTE_ADDR": "10.1.2.3"}
    )
    assert r.status_code == 200
    assert r.json["card_number"] == "****" and r.json["ssn"] == "****"
    decision, req, extra = log.last
    assert r.json["decision"] == decision.decision_id
    assert req.context["ip"] == "10.1.2.3"
    assert extra["http"]["route"] == "GET /customers/{id}"
    assert int(r.headers["content-length"]) == len(r.data)


def test_flask_step_up_deny_and_invalid_token(flask_client: Any) -> None:
    r = flask_client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
    assert r.status_code == 401
    [c] = parse_challenges(r.headers["www-authenticate"])
    # from 127.0.0.1 (off the corporate network) the stricter risk step-up (600 s) merges in
    assert c.params["error"] == "insufficient_user_authentication" and c.params["max_age"] == "600"
    r = flask_client.get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403 and r.mimetype == "application/problem+json"
    assert r.json["code"] == "access_denied" and r.json["decision_id"]
    r = flask_client.get("/customers/c-1001", headers=bearer(token(key=rogue_key())))
    assert r.status_code == 401 and 'error="invalid_token"' in r.headers["www-authenticate"]
    assert CALLS == []


def test_flask_forged_forwarded_for_is_ignored(flask_client: Any, log: RecordingLog) -> None:
    flask_client.get(
        "/customers/c-1001",
        headers={**bearer(), "X-Forwarded-For": "10.1.2.3"},
        environ_base={"REMOTE_ADDR": "203.0.113.5"},
    )
    assert log.last[1].context["ip"] == "203.0.113.5"


def test_flask_streamed_export_is_rewritten(flask_client: Any) -> None:
    headers = {
        **bearer(sub="u-max", roles=("manager",)),
        "x-device-attestation": attestation("u-max"),
    }
    r = flask_client.get("/departments/support/export", headers=headers)
    assert r.status_code == 200, r.data
    assert all(x["email"].startswith("tok_k1_") for x in r.json)
    assert b"4111111111111111" not in r.data


def test_flask_non_json_with_obligations_is_withheld(log: RecordingLog) -> None:
    app = flask_app(log)
    app.wsgi_app = ZeroTrustMiddleware(  # type: ignore[method-assign]
        app.wsgi_app.app,  # type: ignore[attr-defined]
        shipped_pdp(log),
        resolve=RouteTable(
            {"GET /text/{id}": ("customer_record", "read")}, properties=customer_properties
        ),
        config=web_config(),
    )
    r = app.test_client().get("/text/c-1001", headers=bearer())
    assert r.status_code == 500 and b"4111" not in r.data


def test_flask_unknown_obligation_fails_closed(log: RecordingLog) -> None:
    client = flask_app(log, extra_policy=WATERMARK_POLICY).test_client()
    r = client.patch("/customers/c-1001", headers=bearer(), json={})
    assert r.status_code == 403 and r.json["code"] == "obligation_unsupported"
    assert CALLS == []


def test_async_resolver_is_refused_under_wsgi(log: RecordingLog) -> None:
    async def resolve_async(http: Any) -> None:
        return None

    app = ZeroTrustMiddleware(
        lambda e, s: [], shipped_pdp(log), resolve=resolve_async, config=web_config()
    )
    with pytest.raises(WebConfigError):
        Client(app).get("/")


def test_decision_helpers_need_the_middleware() -> None:
    with pytest.raises(NoDecisionError):
        decision_of({})
    with pytest.raises(NoDecisionError):
        access_request_of(SimpleNamespace(META={}))


# --- Django -----------------------------------------------------------------------------


def _django_views() -> list[Any]:
    from django.http import HttpRequest, JsonResponse
    from django.urls import path

    def customer(req: HttpRequest, id: str) -> JsonResponse:
        CALLS.append(id)
        body = {**CUSTOMERS[id], "decision": decision_of(req).effect.value}
        body["subject"] = access_request_of(req).subject.id
        return JsonResponse(body)

    return [path("customers/<str:id>", customer)]


@pytest.fixture(scope="module")
def django_handler() -> Iterator[Any]:
    with django_urls(_django_views()):
        from django.core.handlers.wsgi import WSGIHandler

        yield WSGIHandler()


@pytest.fixture
def django_client(django_handler: Any, log: RecordingLog) -> Iterator[Client]:
    # Django's own test Client calls its handler directly, bypassing WSGI, so the
    # WSGI-wrapped handler is driven through Werkzeug's WSGI client instead.
    app = ZeroTrustMiddleware(
        django_handler, shipped_pdp(log), resolve=resolve, config=web_config()
    )
    yield Client(app)


def test_django_allow_masks_and_exposes_the_decision(django_client: Client) -> None:
    r = django_client.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200
    body = r.get_json()
    assert (
        body["card_number"] == "****"
        and body["decision"] == "allow"
        and body["subject"] == "u-anna"
    )


def test_django_refusals(django_client: Client) -> None:
    r = django_client.get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403 and r.get_json()["code"] == "access_denied"
    r = django_client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
    assert (
        r.status_code == 401 and "insufficient_user_authentication" in r.headers["www-authenticate"]
    )
    r = django_client.get("/customers/c-1001")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert CALLS == []


def test_environ_key_is_documented_name(django_client: Client) -> None:
    assert DECISION_KEY == "zerotrust.decision"


# --- what Flask serves is what was decided ---------------------------------------------

PAGES_POLICY = """
policy: public-pages
target: {resources: [page], actions: [read]}
rules:
  - {id: anyone-authenticated, effect: allow}
"""

CATCH_ALL = RouteTable(
    {
        "GET /customers/{id}": ("customer_record", "read"),
        "GET /{page:path}": ("page", "read"),
    },
    properties=customer_properties,
)


def catch_all_app(log: RecordingLog) -> Flask:
    app = Flask(__name__)

    @app.get("/customers/<id>")
    def read(id: str) -> Any:
        CALLS.append(id)
        return CUSTOMERS[id]

    @app.get("/<path:page>")
    def page(page: str) -> Any:
        return {"page": page}

    app.wsgi_app = ZeroTrustMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, shipped_pdp(log, extra=PAGES_POLICY), resolve=CATCH_ALL, config=web_config()
    )
    return app


@pytest.mark.parametrize("path", ["//customers/c-5150", "///customers/c-5150"])
def test_double_slash_does_not_turn_a_customer_into_a_public_page(
    log: RecordingLog, path: str
) -> None:
    # Werkzeug routes "//customers/c-5150" to the customer view; deciding on the raw path
    # matched the catch-all page route instead, and the other department's record leaked.
    client = catch_all_app(log).test_client()
    r = client.get("/", headers=bearer(), environ_overrides={"PATH_INFO": path})
    assert r.status_code == 403 and r.json["code"] == "access_denied"
    assert log.last[1].resource.type == "customer_record"
    assert log.last[1].resource.id == "c-5150"
    assert CALLS == []


@pytest.mark.parametrize("peer", ["::ffff:10.0.0.5", "::ffff:a00:5"])
def test_flask_dual_stack_proxy_is_recognised(log: RecordingLog, peer: str) -> None:
    client = flask_app(log, trusted_proxies=["10.0.0.0/8"]).test_client()
    client.get(
        "/customers/c-1001",
        headers={**bearer(), "X-Forwarded-For": "8.8.4.4"},
        environ_base={"REMOTE_ADDR": peer},
    )
    assert log.last[1].context["ip"] == "8.8.4.4"
    assert "non-corporate-network" in log.last[0].risk.signals


def test_wsgi_resolver_answer_that_is_not_a_target_is_refused(log: RecordingLog) -> None:
    app = ZeroTrustMiddleware(
        lambda e, s: [b"secret"],
        shipped_pdp(log),
        resolve=lambda http: {"resource_type": "doc"},
        config=web_config(unmatched="pass"),
    )
    with pytest.raises(WebConfigError, match="Target or None"):
        Client(app).get("/")


@pytest.mark.parametrize("unmatched", ["deny", "pass"])
def test_path_that_is_not_utf8_matches_no_route(log: RecordingLog, unmatched: str) -> None:
    # /customers/%FF: Werkzeug would serve id "\ufffd", Django id "%FF"; neither is decided.
    client = flask_app(log, unmatched=unmatched).test_client()
    r = client.get("/", headers=bearer(), environ_overrides={"PATH_INFO": "/customers/c-1001\xff"})
    assert r.status_code == 403 and r.json["code"] == "unmatched_route"
    assert log.last[1].resource.type == "zerotrust:unmatched_route"
    assert CALLS == []


LIMIT_UPDATES = """
policy: limit-updates
target: {resources: [customer_record], actions: [update]}
rules:
  - id: allow-agent-update-limited
    effect: allow
    when: "'agent' in subject.properties.roles"
    obligations: [{type: limit, max: 1}]
"""


def test_flask_limit_on_a_response_without_a_list_is_withheld_not_released_whole(
    log: RecordingLog,
) -> None:
    client = flask_app(log, extra_policy=LIMIT_UPDATES).test_client()
    r = client.patch("/customers/c-1001", headers=bearer(), json={})
    assert r.status_code == 500 and r.json["code"] == "obligation_failed"
    assert b"Ada Berg" not in r.data


# --- methods: a route matches only a method every framework reads alike -----------------


@pytest.mark.parametrize("unmatched", ["deny", "pass"])
@pytest.mark.parametrize("method", ["get", "Get", "patch"])
def test_lowercase_method_is_refused_not_decided_as_its_upper_case(
    log: RecordingLog, method: str, unmatched: str
) -> None:
    # Flask (Werkzeug) upper-cases the method and would serve `get` as GET.
    client = flask_app(log, unmatched=unmatched).test_client()
    r = client.open("/customers/c-1001", method=method, headers=bearer())
    assert r.status_code == 403 and r.get_json()["code"] == "unmatched_route"
    _, request, _ = log.last
    assert request.resource.type == "zerotrust:unmatched_route"
    assert request.action.name == f"http:{method}" and request.context["method"] == method
    assert CALLS == []


def test_lowercase_get_cannot_reach_a_plain_wsgi_app_as_another_method(log: RecordingLog) -> None:
    # A plain WSGI app compares the method as sent: had `get` been decided as GET (a
    # read the agent may do), this app would have run its update for it.
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        CALLS.append(environ["REQUEST_METHOD"])
        action = "read" if environ["REQUEST_METHOD"] == "GET" else "update"
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"action": action}).encode()]

    client = Client(
        ZeroTrustMiddleware(app, shipped_pdp(log), resolve=resolve, config=web_config())
    )
    r = client.open("/customers/c-1001", method="get", headers=bearer())
    assert r.status_code == 403 and CALLS == []
    r = client.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.get_json() == {"action": "read"} and CALLS == ["GET"]


def test_django_lowercase_method_is_refused_as_unmatched(
    django_handler: Any, log: RecordingLog
) -> None:
    # Django upper-cases the method too: refused, even where unmatched requests pass.
    app = ZeroTrustMiddleware(
        django_handler, shipped_pdp(log), resolve=resolve, config=web_config(unmatched="pass")
    )
    r = Client(app).open("/customers/c-1001", method="get", headers=bearer())
    assert r.status_code == 403 and r.get_json()["code"] == "unmatched_route"
    assert CALLS == []


# --- forwarded headers behind a real WSGI server ------------------------------------------


def _werkzeug_server(app: Any) -> Any:
    from werkzeug.serving import make_server

    return make_server("127.0.0.1", 0, app)


def _django_server(app: Any) -> Any:
    from django.core.servers.basehttp import WSGIRequestHandler, WSGIServer

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

    server = WSGIServer(("127.0.0.1", 0), Quiet)
    server.set_app(app)
    return server


@pytest.mark.parametrize("serve", [_werkzeug_server, _django_server], ids=["werkzeug", "django"])
def test_underscore_spelt_forwarded_headers_are_dropped_by_the_development_servers(
    log: RecordingLog, serve: Any, django_handler: Any
) -> None:
    # Under WSGI `X_Forwarded_For` and `X-Forwarded-For` are one environ key, and a
    # server that keeps both joins them, so a client could choose its address through a
    # trusted proxy that forwards the first. Flask's and Django's development servers
    # drop header names with an underscore (as gunicorn >= 22 and waitress do), so the
    # proxy's value is the one decided on; docs/integration.md lists who drops them.
    app = flask_app(log, trusted_proxies=["127.0.0.1/32"], country_header="cf-ipcountry")
    server = serve(app.wsgi_app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=10)
        connection.putrequest("GET", "/customers/c-1001")
        for name, value in [
            *bearer().items(),
            ("X-Forwarded-For", "198.51.100.7"),
            ("CF-IPCountry", "US"),
            ("X_Forwarded_For", "10.9.8.7"),
            ("CF_IPCountry", "DE"),
        ]:
            connection.putheader(name, value)
        connection.endheaders()
        connection.getresponse().read()  # refused or not: what was decided on counts
        connection.close()
    finally:
        server.shutdown()
        thread.join(timeout=10)
        server.server_close()
    _, request, _ = log.last
    assert request.context["ip"] == "198.51.100.7" and request.context["country"] == "US"


def test_a_request_the_pdp_refuses_for_its_attributes_is_a_400(
    monkeypatch: pytest.MonkeyPatch, log: RecordingLog
) -> None:
    """``schema_validation="enforce"``: the route's properties lack the required
    ``region``; refused before the app runs, naming the field."""
    monkeypatch.setattr(sys.modules[__name__], "shipped_pdp", lambda *a, **k: schema_pdp("enforce"))
    r = flask_app(log).test_client().get("/customers/c-1001", headers=bearer())
    assert_invalid_request(r.status_code, r.mimetype, r.json)
    assert CALLS == []
