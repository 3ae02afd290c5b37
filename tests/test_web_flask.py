"""The Flask extension through Flask's test client, with real signed tokens."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Blueprint, Flask, Response, g
from flask.views import MethodView
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_helpers import (
    CUSTOMERS,
    WATERMARK_POLICY,
    RecordingLog,
    assert_invalid_request,
    attestation,
    bearer,
    customer_properties,
    resolve,
    rogue_key,
    schema_pdp,
    shipped_pdp,
    token,
    web_config,
)

from zerotrust import Effect, ZeroTrustError
from zerotrust.web import (
    AccessDenied,
    StepUpRequired,
    WebConfigError,
    current_request,
    parse_challenges,
)
from zerotrust.web.flask import (
    AccessRefused,
    AuthenticationRefused,
    Refused,
    StepUpRefused,
    ZeroTrust,
)
from zerotrust.web.wsgi import ZeroTrustMiddleware

CALLS: list[str] = []


def attributes(id: str) -> Any:
    return customer_properties("customer_record", id, None)


def build(
    log: RecordingLog,
    *,
    extra_policy: str | None = None,
    factory: bool = False,
    zt_options: dict[str, Any] | None = None,
    app_config: dict[str, Any] | None = None,
    **config: Any,
) -> Flask:
    """Routes as in test_web_wsgi.py, declared with the extension; some in a blueprint."""
    app = Flask(__name__)
    app.config.update(app_config or {})
    pdp, cfg = shipped_pdp(log, extra=extra_policy), web_config(**config)
    if factory:
        zt = ZeroTrust(**(zt_options or {}))
        app.config.update(ZEROTRUST_PDP=pdp, ZEROTRUST_CONFIG=cfg)
    else:
        zt = ZeroTrust(app, pdp=pdp, config=cfg, **(zt_options or {}))
    records = Blueprint("records", __name__, url_prefix="/api")

    @app.get("/customers/<id>")
    @zt.requires("customer_record", "read", resource_id="id", properties=attributes)
    def read(id: str) -> Any:
        CALLS.append(id)
        return {
            **CUSTOMERS[id],
            "decision": g.zerotrust_decision.decision_id,
            "subject": g.zerotrust_request.subject.id,
            "current": getattr(current_request(), "resource", None) is not None,
        }

    @app.patch("/customers/<id>")
    @zt.requires("customer_record", "update", resource_id="id", properties=attributes)
    def update(id: str) -> Any:
        CALLS.append(id)
        return CUSTOMERS[id]

    @records.get("/departments/<dept>/export")
    @zt.requires(
        "customer_record",
        "export",
        resource_id="dept",
        properties=lambda dept: {"owner_dept": dept, "sensitivity": 3},
        context={"records": 2},
    )
    def export(dept: str) -> Any:
        rows = [r for r in CUSTOMERS.values() if r["owner_dept"] == "support"]
        text = json.dumps(rows)
        return Response(
            (text[i : i + 40] for i in range(0, len(text), 40)), mimetype="application/json"
        )

    @records.get("/text/<id>")
    @zt.requires("customer_record", "read", resource_id="id", properties=attributes)
    def text(id: str) -> str:
        CALLS.append(id)
        return "card 4111111111111111"

    @records.get("/notes/<id>/<int:page>")
    @zt.requires("customer_record", "read", resource_id="id", properties=attributes)
    async def notes(id: str, page: int) -> Any:
        CALLS.append(id)
        return {"id": id, "page": page, "ssn": CUSTOMERS[id]["ssn"]}

    @records.get("/misdeclared/<id>")
    @zt.requires("customer_record", "read", resource_id="customer_id")
    def misdeclared(id: str) -> str:
        CALLS.append(id)
        return "ran"

    class Card(MethodView):
        @zt.requires("customer_record", "read", resource_id="id", properties=attributes)
        def get(self, id: str) -> Any:
            CALLS.append(id)
            return {"card_number": CUSTOMERS[id]["card_number"]}

    records.add_url_rule("/cards/<id>", view_func=Card.as_view("card"))

    @app.get("/health")
    def health() -> Any:
        CALLS.append("health")
        return {"status": "ok"}

    app.register_blueprint(records)
    if factory:
        zt.init_app(app)
    return app


@pytest.fixture
def log() -> Iterator[RecordingLog]:
    CALLS.clear()
    yield RecordingLog()
    CALLS.clear()


@pytest.fixture
def client(log: RecordingLog) -> Any:
    return build(log).test_client()


def test_allow_masks_fields_and_puts_the_decision_on_g(client: Any, log: RecordingLog) -> None:
    r = client.get("/customers/c-1001", headers=bearer(), environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert r.status_code == 200
    assert r.json["card_number"] == "****" and r.json["ssn"] == "****"
    assert r.json["name"] == "Ada Berg"
    decision, req, extra = log.last
    assert decision.effect is Effect.ALLOW
    assert r.json["decision"] == decision.decision_id and r.json["subject"] == "u-anna"
    assert r.json["current"] is True  # @require deeper in the view sees this request
    assert req.resource.id == "c-1001" and req.resource.properties["owner_dept"] == "support"
    assert req.context["ip"] == "10.1.2.3"
    assert extra["http"] == {
        "method": "GET",
        "path": "/customers/<id>",
        "route": "GET /customers/<id>",
    }
    assert int(r.headers["content-length"]) == len(r.data)


def test_deny_is_problem_json_and_the_view_never_runs(client: Any, log: RecordingLog) -> None:
    r = client.get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403 and r.mimetype == "application/problem+json"
    assert r.json["code"] == "access_denied"
    assert r.json["decision_id"] == log.last[0].decision_id
    assert "reasons" not in r.json  # not in debug mode
    assert r.headers["cache-control"] == "no-store"
    assert CALLS == []


def test_step_up_then_retry_with_mfa(client: Any, log: RecordingLog) -> None:
    r = client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
    assert r.status_code == 401 and CALLS == []
    [challenge] = parse_challenges(r.headers["www-authenticate"])
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert challenge.params["acr_values"] == "urn:example:loa:2"
    assert r.json["code"] == "step_up_required"
    assert log.last[0].effect is Effect.STEP_UP
    r = client.get("/customers/c-1002", headers=bearer(amr=("pwd", "mfa")))
    assert r.status_code == 200 and r.json["ssn"] == "****"
    assert CALLS == ["c-1002"]


@pytest.mark.parametrize(
    ("headers", "error"),
    [
        ({}, None),
        ({"authorization": "Basic dTpw"}, None),
        (bearer(token(key=rogue_key())), "invalid_token"),
        (bearer("not.a.jwt"), "invalid_token"),
        (bearer(token(aud="another-api")), "invalid_token"),
    ],
    ids=["missing", "other-scheme", "forged", "garbage", "wrong-audience"],
)
def test_missing_and_invalid_tokens_get_the_bearer_challenge(
    client: Any, log: RecordingLog, headers: dict[str, str], error: str | None
) -> None:
    r = client.get("/customers/c-1001", headers=headers)
    assert r.status_code == 401 and CALLS == []
    [challenge] = parse_challenges(r.headers["www-authenticate"])
    assert challenge.scheme == "bearer" and challenge.params.get("error") == error
    assert r.json["code"] == (error or "missing_token")
    assert log.last[1].subject.id == "anonymous"  # the refusal is in the decision log


def wsgi_app(log: RecordingLog) -> Flask:
    """The same routes behind the WSGI middleware, to compare answers with."""
    app = Flask(__name__)

    @app.get("/customers/<id>")
    def read(id: str) -> Any:
        return CUSTOMERS[id]

    app.wsgi_app = ZeroTrustMiddleware(  # type: ignore[method-assign]
        app.wsgi_app, shipped_pdp(log), resolve=resolve, config=web_config()
    )
    return app


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/customers/c-5150", bearer()),
        ("/customers/c-1002", bearer(amr=("pwd",))),
        ("/customers/c-1001", {}),
        ("/customers/c-1001", bearer(token(key=rogue_key()))),
    ],
    ids=["deny", "step-up", "missing", "forged"],
)
def test_refusals_answer_exactly_as_the_wsgi_middleware(
    log: RecordingLog, path: str, headers: dict[str, str]
) -> None:
    ours = build(log).test_client().get(path, headers=headers)
    theirs = wsgi_app(log).test_client().get(path, headers=headers)
    assert ours.status_code == theirs.status_code
    for name in ("content-type", "www-authenticate", "cache-control", "content-length"):
        assert ours.headers.get(name) == theirs.headers.get(name), name
    assert {**ours.json, "decision_id": ""} == {**theirs.json, "decision_id": ""}


def test_undeclared_routes_are_untouched_by_default(client: Any, log: RecordingLog) -> None:
    assert client.get("/health").json == {"status": "ok"}
    assert client.get("/nowhere").status_code == 404
    assert log.entries == [] and CALLS == ["health"]


def test_require_all_refuses_undeclared_routes(log: RecordingLog) -> None:
    app = build(log, zt_options={"require_all": True})
    client = app.test_client()
    r = client.get("/health")
    assert r.status_code == 401 and r.json["code"] == "missing_token"
    r = client.get("/health", headers=bearer())
    assert r.status_code == 403 and r.json["code"] == "unmatched_route"
    assert log.last[2]["enforcement"] == "unmatched_route"
    assert client.get("/nowhere", headers=bearer()).status_code == 403  # 404s too
    assert CALLS == []
    assert client.get("/customers/c-1001", headers=bearer()).status_code == 200  # declared
    assert client.get("/api/cards/c-1001", headers=bearer()).json == {"card_number": "****"}
    assert client.head("/api/cards/c-1001", headers=bearer()).status_code == 200

    exempt = build(log, zt_options={"require_all": True, "exempt": {"health"}})
    assert exempt.test_client().get("/health").json == {"status": "ok"}


def test_blueprints_streams_and_obligations(client: Any) -> None:
    headers = {
        **bearer(sub="u-max", roles=("manager",)),
        "x-device-attestation": attestation("u-max"),
    }
    r = client.get("/api/departments/support/export", headers=headers)
    assert r.status_code == 200, r.data
    assert all(x["email"].startswith("tok_k1_") for x in r.json)
    assert b"4111111111111111" not in r.data and b"example.com" not in r.data


def test_a_body_that_cannot_be_rewritten_is_withheld(client: Any, log: RecordingLog) -> None:
    r = client.get("/api/text/c-1001", headers=bearer())
    assert r.status_code == 500 and r.json["code"] == "obligation_failed"
    assert r.json["decision_id"] == log.last[0].decision_id
    assert b"4111" not in r.data
    assert CALLS == ["c-1001"]  # it ran; its answer did not leave


def test_a_too_large_body_is_withheld(log: RecordingLog) -> None:
    client = build(log, max_body_bytes=64).test_client()
    r = client.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 500 and b"4111" not in r.data


def test_an_unsupported_obligation_refuses_before_the_view(log: RecordingLog) -> None:
    client = build(log, extra_policy=WATERMARK_POLICY).test_client()
    r = client.patch("/customers/c-1001", headers=bearer(), json={"name": "Mallory"})
    assert r.status_code == 403 and r.json["code"] == "obligation_unsupported"
    assert CALLS == []


def test_async_views_and_method_views(client: Any) -> None:
    r = client.get("/api/notes/c-1001/3", headers=bearer())
    assert r.status_code == 200 and r.json == {"id": "c-1001", "page": 3, "ssn": "****"}
    assert client.get("/api/notes/c-5150/3", headers=bearer()).status_code == 403
    r = client.get("/api/cards/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json == {"card_number": "****"}
    assert client.get("/api/cards/c-5150", headers=bearer()).status_code == 403
    assert CALLS == ["c-1001", "c-1001"]


def test_other_view_arguments_are_path_params(client: Any, log: RecordingLog) -> None:
    client.get("/api/notes/c-1001/3", headers=bearer())
    request = log.last[1]
    assert request.resource.id == "c-1001" and request.context["path_params"] == {"page": "3"}


def test_debug_mode_says_why(log: RecordingLog) -> None:
    app = build(log)
    app.debug = True
    r = app.test_client().get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403
    assert {"rule": "customer-records/deny-other-department", "effect": "deny"}.items() <= (
        r.json["reasons"][0].items()
    )
    quiet = build(log, app_config={"ZEROTRUST_DEBUG": False})
    quiet.debug = True  # ZEROTRUST_DEBUG wins over app.debug
    assert "reasons" not in quiet.test_client().get("/customers/c-5150", headers=bearer()).json
    for loud in (
        build(log, factory=True, app_config={"ZEROTRUST_DEBUG": True}),
        build(log, zt_options={"debug": True}),
    ):
        assert "reasons" in loud.test_client().get("/customers/c-5150", headers=bearer()).json


def test_app_error_handlers_see_refusals(log: RecordingLog) -> None:
    app = build(log)
    seen: list[BaseException] = []

    @app.errorhandler(403)
    def forbidden(exc: Exception) -> Any:
        seen.append(exc)
        assert isinstance(exc, Refused)
        return exc.get_response()  # the app logs it, then answers as zerotrust does

    @app.errorhandler(StepUpRequired)
    def step_up(exc: StepUpRequired) -> Any:
        seen.append(exc)
        return {"step_up": exc.decision.decision_id}, 401

    client = app.test_client()
    r = client.get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403 and r.json["code"] == "access_denied"
    r = client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
    assert r.status_code == 401 and r.json["step_up"]
    deny, step = seen
    assert isinstance(deny, AccessRefused) and isinstance(deny, AccessDenied)
    assert deny.code == 403 and deny.decision.effect is Effect.DENY
    assert isinstance(step, StepUpRefused) and step.decision.effect is Effect.STEP_UP
    assert all(isinstance(e, ZeroTrustError) for e in seen)

    app = build(log)
    client = app.test_client()

    @app.errorhandler(401)  # by status, before any handler by class
    def unauthorized(exc: Exception) -> Any:
        seen.append(exc)
        assert isinstance(exc, Refused)
        return exc.get_response()

    r = client.get("/customers/c-1001")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert isinstance(seen[-1], AuthenticationRefused) and isinstance(seen[-1], AccessDenied)
    assert client.get("/customers/c-1002", headers=bearer(amr=("pwd",))).json["code"] == (
        "step_up_required"
    )
    assert isinstance(seen[-1], StepUpRefused)


def test_factory_pattern_reads_app_config(log: RecordingLog) -> None:
    client = build(log, factory=True).test_client()
    assert client.get("/customers/c-1001", headers=bearer()).json["card_number"] == "****"
    assert client.get("/customers/c-5150", headers=bearer()).status_code == 403


def test_bad_configuration_is_a_typed_error(log: RecordingLog) -> None:
    with pytest.raises(WebConfigError, match="PolicyDecisionPoint"):
        ZeroTrust(Flask(__name__), config=web_config())
    with pytest.raises(WebConfigError, match="WebConfig"):
        ZeroTrust(Flask(__name__), pdp=shipped_pdp())
    app = Flask(__name__)
    app.config.update(ZEROTRUST_PDP=shipped_pdp(), ZEROTRUST_CONFIG=web_config())
    ZeroTrust(app)
    with pytest.raises(WebConfigError, match="already"):
        ZeroTrust(app)
    for key, value in (("ZEROTRUST_DEBUG", "yes"), ("ZEROTRUST_REQUIRE_ALL", 1)):
        bad = Flask(__name__)
        bad.config.update(
            {"ZEROTRUST_PDP": shipped_pdp(), "ZEROTRUST_CONFIG": web_config(), key: value}
        )
        with pytest.raises(WebConfigError, match=key):
            ZeroTrust(bad)
    zt = ZeroTrust(pdp=shipped_pdp(), config=web_config())
    with pytest.raises(WebConfigError, match="action"):
        zt.requires("customer_record", "")
    with pytest.raises(WebConfigError, match="exempt"):
        ZeroTrust(Flask(__name__), pdp=shipped_pdp(), config=web_config(), exempt="static")
    for exempt in (3, ["static", None]):
        with pytest.raises(WebConfigError, match="exempt"):
            ZeroTrust(Flask(__name__), pdp=shipped_pdp(), config=web_config(), exempt=exempt)


def test_a_view_without_init_app_or_its_id_never_runs(log: RecordingLog) -> None:
    r = build(log).test_client().get("/api/misdeclared/c-1001", headers=bearer())
    assert r.status_code == 500 and CALLS == []
    app = Flask(__name__)
    zt = ZeroTrust(pdp=shipped_pdp(), config=web_config())  # init_app never called

    @app.get("/customers/<id>")
    @zt.requires("customer_record", "read", resource_id="id")
    def read(id: str) -> Any:
        CALLS.append(id)
        return CUSTOMERS[id]

    assert app.test_client().get("/customers/c-1001", headers=bearer()).status_code == 500
    assert CALLS == []


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    customer=st.sampled_from(sorted(CUSTOMERS)),
    roles=st.sets(st.sampled_from(["agent", "manager", "auditor"]), max_size=2),
    department=st.sampled_from(["support", "billing"]),
    amr=st.sets(st.sampled_from(["pwd", "mfa", "hwk"]), max_size=3),
)
def test_the_view_runs_only_on_allow_and_never_leaks_a_card_number_to_agents(
    client: Any,
    log: RecordingLog,
    customer: str,
    roles: set[str],
    department: str,
    amr: set[str],
) -> None:
    CALLS.clear()
    headers = bearer(roles=tuple(sorted(roles)), department=department, amr=tuple(sorted(amr)))
    r = client.get(f"/customers/{customer}", headers=headers)
    decision = log.last[0]
    assert (r.status_code == 200) == (decision.effect is Effect.ALLOW) == ([customer] == CALLS)
    if r.status_code == 200 and "manager" not in roles:
        assert CUSTOMERS[customer]["card_number"].encode() not in r.data
    if r.status_code != 200:
        assert r.json["decision_id"] == decision.decision_id


NOTES_POLICY = """
policy: notes
target: {resources: [note], actions: [read]}
rules:
  - id: allow-notes
    effect: allow
    when: "true"
"""


def test_a_declared_view_called_from_another_keeps_the_outer_obligations(
    log: RecordingLog,
) -> None:
    app = Flask(__name__)
    zt = ZeroTrust(app, pdp=shipped_pdp(log, extra=NOTES_POLICY), config=web_config())

    @app.get("/notes/<id>")
    @zt.requires("note", "read", resource_id="id")
    def note(id: str) -> Any:
        return {"note": "called back", "card_number": CUSTOMERS[id]["card_number"]}

    @app.get("/customers/<id>")
    @zt.requires("customer_record", "read", resource_id="id", properties=attributes)
    def read(id: str) -> Any:
        return note(id)  # decided again (allow, no obligations)

    r = app.test_client().get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json == {"note": "called back", "card_number": "****"}
    assert [e[1].resource.type for e in log.entries] == ["customer_record", "note"]
    r = app.test_client().get("/notes/c-1001", headers=bearer())
    assert r.json["card_number"] == "4111111111111111"  # alone, no obligations


def test_a_request_that_cannot_be_built_is_refused_unasked(log: RecordingLog) -> None:
    app = Flask(__name__)
    zt = ZeroTrust(app, pdp=shipped_pdp(log), config=web_config())

    @app.get("/customers/<id>")
    @zt.requires("customer_record", "read", resource_id="id", properties={"tags": {1, 2}})
    def read(id: str) -> Any:
        CALLS.append(id)
        return CUSTOMERS[id]

    r = app.test_client().get("/customers/c-1001", headers=bearer())
    assert r.status_code == 403 and r.json["code"] == "unevaluable_request"
    assert "decision_id" not in r.json and CALLS == [] and log.entries == []


def test_a_lookup_the_route_cannot_call_is_a_typed_error_naming_the_fix(
    log: RecordingLog,
) -> None:
    app = Flask(__name__)
    app.testing = True  # the view's exception reaches the test
    zt = ZeroTrust(app, pdp=shipped_pdp(log), config=web_config())

    @app.get("/customers/<customer_id>")
    @zt.requires("customer_record", "read", resource_id="customer_id", properties=attributes)
    def read(customer_id: str) -> Any:
        CALLS.append(customer_id)
        return CUSTOMERS[customer_id]

    with pytest.raises(WebConfigError, match=r"properties= takes 'id'.*customer_id"):
        app.test_client().get("/customers/c-1001", headers=bearer())
    assert CALLS == [] and log.entries == []

    async def lookup(customer_id: str) -> Any:
        return attributes(customer_id)

    with pytest.raises(WebConfigError, match="async"):
        zt.requires("customer_record", "read", properties=lookup)
    with pytest.raises(WebConfigError, match="signature"):
        zt.requires("customer_record", "read", context=dict)


@pytest.mark.parametrize("mode", ["enforce", "report"])
def test_a_request_the_pdp_refuses_for_its_attributes_is_a_400(
    monkeypatch: pytest.MonkeyPatch, log: RecordingLog, mode: str
) -> None:
    """``enforce``: the view's properties lack the required ``region``, refused before
    the view runs, naming the field; ``report`` decides as usual."""
    monkeypatch.setattr(sys.modules[__name__], "shipped_pdp", lambda *a, **k: schema_pdp(mode))
    r = build(log).test_client().get("/customers/c-1001", headers=bearer())
    if mode == "enforce":
        assert_invalid_request(r.status_code, r.mimetype, r.json)
        assert CALLS == []
    else:
        assert r.status_code == 200 and CALLS == ["c-1001"]
