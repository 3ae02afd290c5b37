"""The Django middleware, @requires and the class-based view mixin through Django's own
test clients (sync and async), with real signed tokens and the shipped policies."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_helpers import (
    WATERMARK_POLICY,
    RecordingLog,
    assert_invalid_request,
    attestation,
    bearer,
    django_urls,
    resolve,
    rogue_key,
    schema_pdp,
    shipped_pdp,
    token,
    web_config,
)

from zerotrust import Effect, PolicyDecisionPoint
from zerotrust.web import WebConfig, WebConfigError, parse_challenges

pytest.importorskip("django")

from django.core.exceptions import ImproperlyConfigured
from django.test import AsyncClient, Client
from django.test.utils import override_settings

from zerotrust.web.django import DjangoConfigError

MIDDLEWARE = ["zerotrust.web.django.ZeroTrustMiddleware"]


@pytest.fixture
def log() -> Iterator[RecordingLog]:
    from django_site import views

    views.CALLS.clear()
    yield RecordingLog()
    views.CALLS.clear()


def calls() -> list[str]:
    from django_site import views

    return views.CALLS


@pytest.fixture
def site(log: RecordingLog) -> Iterator[Any]:
    """The test site with the middleware; ``site(**zerotrust)`` overrides settings.ZEROTRUST."""
    stack: list[Any] = []

    def configure(extra_policy: str | None = None, **options: Any) -> None:
        zerotrust = {"PDP": shipped_pdp(log, extra=extra_policy), "CONFIG": web_config()}
        zerotrust.update(options)
        over = override_settings(
            ROOT_URLCONF="django_site.urls", MIDDLEWARE=MIDDLEWARE, ZEROTRUST=zerotrust
        )
        over.enable()
        stack.append(over)

    with django_urls([]):
        configure()
        try:
            yield configure
        finally:
            for over in reversed(stack):
                over.disable()


@pytest.fixture
def client(site: Any) -> Client:
    return Client()


def test_allow_masks_fields_and_puts_the_decision_on_the_request(
    client: Client, log: RecordingLog
) -> None:
    r = client.get("/customers/c-1001", headers=bearer(), REMOTE_ADDR="10.1.2.3")
    assert r.status_code == 200
    body = r.json()
    assert body["card_number"] == "****" and body["ssn"] == "****"
    assert body["name"] == "Ada Berg"
    decision, req, extra = log.last
    assert decision.effect is Effect.ALLOW
    assert body["decision"] == decision.decision_id and body["subject"] == "u-anna"
    assert body["current"] is True  # @require deeper in the view sees this request
    assert req.resource.id == "c-1001" and req.resource.properties["owner_dept"] == "support"
    assert req.context["ip"] == "10.1.2.3"
    assert req.context["route"] == "GET /customers/<str:customer_id>"
    assert extra["http"] == {
        "method": "GET",
        "path": "/customers/<str:customer_id>",
        "route": "GET /customers/<str:customer_id>",
        "url_name": "customer",
    }


def test_deny_is_problem_json_and_the_view_never_runs(client: Client, log: RecordingLog) -> None:
    r = client.get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403 and r["content-type"] == "application/problem+json"
    assert r.json()["code"] == "access_denied"
    assert r.json()["decision_id"] == log.last[0].decision_id
    assert "reasons" not in r.json()
    assert r["cache-control"] == "no-store"
    assert calls() == []


def test_step_up_then_retry_with_mfa(client: Client, log: RecordingLog) -> None:
    r = client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
    assert r.status_code == 401 and calls() == []
    [challenge] = parse_challenges(r["www-authenticate"])
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert challenge.params["acr_values"] == "urn:example:loa:2"
    assert r.json()["code"] == "step_up_required"
    assert log.last[0].effect is Effect.STEP_UP
    r = client.get("/customers/c-1002", headers=bearer(amr=("pwd", "mfa")))
    assert r.status_code == 200 and r.json()["ssn"] == "****"
    assert calls() == ["c-1002"]


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
    client: Client, log: RecordingLog, headers: dict[str, str], error: str | None
) -> None:
    r = client.get("/customers/c-1001", headers=headers)
    assert r.status_code == 401 and calls() == []
    [challenge] = parse_challenges(r["www-authenticate"])
    assert challenge.scheme == "bearer" and challenge.params.get("error") == error
    assert r.json()["code"] == (error or "missing_token")
    assert log.last[1].subject.id == "anonymous"  # the refusal is in the decision log


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
    client: Client, log: RecordingLog, path: str, headers: dict[str, str]
) -> None:
    from django.core.handlers.wsgi import WSGIHandler
    from werkzeug.test import Client as WerkzeugClient

    from zerotrust.web.wsgi import ZeroTrustMiddleware as WSGIMiddleware

    ours = client.get(path, headers=headers)
    with override_settings(MIDDLEWARE=[]):
        wrapped = WSGIMiddleware(
            WSGIHandler(), shipped_pdp(log), resolve=resolve, config=web_config()
        )
        theirs = WerkzeugClient(wrapped).get(path, headers=headers)
    assert ours.status_code == theirs.status_code
    for name in ("content-type", "www-authenticate", "cache-control", "content-length"):
        assert ours.headers.get(name) == theirs.headers.get(name), name
    assert {**ours.json(), "decision_id": ""} == {**theirs.json, "decision_id": ""}


def test_undeclared_views_are_untouched(client: Client, log: RecordingLog) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/nowhere").status_code == 404
    assert log.entries == [] and calls() == ["health"]


def test_streamed_json_gets_the_obligations(client: Client) -> None:
    headers = {
        **bearer(sub="u-max", roles=("manager",)),
        "x-device-attestation": attestation("u-max"),
    }
    r = client.get("/departments/support/export", headers=headers)
    assert r.status_code == 200
    body = b"".join(r.streaming_content)  # type: ignore[attr-defined]
    assert b"4111111111111111" not in body and b"example.com" not in body
    assert b"tok_k1_" in body


def test_a_body_that_cannot_be_rewritten_is_withheld(client: Client, log: RecordingLog) -> None:
    r = client.get("/text/c-1001", headers=bearer())
    assert r.status_code == 500 and r.json()["code"] == "obligation_failed"
    assert r.json()["decision_id"] == log.last[0].decision_id
    assert b"4111" not in r.content
    assert calls() == ["c-1001"]  # it ran; its answer did not leave


def test_a_too_large_body_is_withheld(site: Any) -> None:
    site(CONFIG=web_config(max_body_bytes=64))
    r = Client().get("/customers/c-1001", headers=bearer())
    assert r.status_code == 500 and b"4111" not in r.content


def test_an_unsupported_obligation_refuses_before_the_view(site: Any) -> None:
    site(extra_policy=WATERMARK_POLICY)
    r = Client().get("/customers/c-1001/update", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "obligation_unsupported"
    assert calls() == []


def test_async_function_views_and_class_based_views(client: Client, log: RecordingLog) -> None:
    r = client.get("/notes/c-1001/3", headers=bearer())
    assert r.status_code == 200 and r.json() == {"id": "c-1001", "page": 3, "ssn": "****"}
    assert log.last[1].context["path_params"] == {"page": "3"}
    assert client.get("/notes/c-5150/3", headers=bearer()).status_code == 403
    r = client.get("/cards/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json() == {"card_number": "****"}
    assert log.last[2]["http"]["url_name"] == "card"
    assert client.get("/cards/c-5150", headers=bearer()).status_code == 403
    r = client.get("/async-cards/c-1001", headers=bearer())
    assert r.json() == {"card_number": "****", "current": True}
    assert calls() == ["c-1001", "c-1001", "c-1001"]


def test_the_async_handler_decides_and_masks_too(site: Any, log: RecordingLog) -> None:
    async def run() -> list[Any]:
        client = AsyncClient()
        return [
            await client.get("/customers/c-1001", headers=bearer()),
            await client.get("/notes/c-1001/2", headers=bearer()),
            await client.get("/async-cards/c-1001", headers=bearer()),
            await client.get("/customers/c-5150", headers=bearer()),
            await client.get("/customers/c-1002", headers=bearer(amr=("pwd",))),
            await client.get("/text/c-1001", headers=bearer()),
        ]

    ok, notes, card, denied, step_up, text = asyncio.run(run())
    assert ok.status_code == 200 and ok.json()["card_number"] == "****"
    assert notes.json()["ssn"] == "****"
    assert card.json() == {"card_number": "****", "current": True}
    assert denied.status_code == 403 and denied.json()["code"] == "access_denied"
    assert (
        step_up.status_code == 401
        and "insufficient_user_authentication" in step_up["www-authenticate"]
    )
    assert text.status_code == 500 and b"4111" not in text.content


def test_a_view_whose_resource_id_is_not_in_the_url_never_runs(client: Client) -> None:
    with pytest.raises(DjangoConfigError, match="customer_id"):
        client.get("/misdeclared/c-1001", headers=bearer())
    assert calls() == []


def test_a_declared_view_without_the_middleware_never_runs(site: Any) -> None:
    with override_settings(MIDDLEWARE=[]), pytest.raises(DjangoConfigError, match="MIDDLEWARE"):
        Client().get("/customers/c-1001", headers=bearer())
    with override_settings(MIDDLEWARE=[]), pytest.raises(DjangoConfigError, match="MIDDLEWARE"):
        Client().get("/cards/c-1001", headers=bearer())
    assert calls() == []


def test_debug_follows_settings_debug_unless_zerotrust_debug_says(site: Any) -> None:
    with override_settings(DEBUG=True):
        r = Client().get("/customers/c-5150", headers=bearer())
    assert r.json()["reasons"][0]["rule"] == "customer-records/deny-other-department"
    site(DEBUG=False)
    with override_settings(DEBUG=True):
        r = Client().get("/customers/c-5150", headers=bearer())
    assert "reasons" not in r.json()


def make_pdp() -> PolicyDecisionPoint:
    return shipped_pdp()


CONFIG = web_config()


def test_settings_take_dotted_paths_and_webconfig_fields(site: Any) -> None:
    site(PDP=f"{__name__}.make_pdp", CONFIG=f"{__name__}.CONFIG")
    r = Client().get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    site(CONFIG={"jwt": CONFIG.jwt, "tokenizer": CONFIG.tokenizer})
    assert Client().get("/customers/c-1001", headers=bearer()).json()["ssn"] == "****"


@pytest.mark.parametrize(
    ("zerotrust", "key"),
    [
        ({"PDP": None}, "PDP"),
        ({"PDP": "no.such.module.pdp"}, "PDP"),
        ({"CONFIG": "not a dotted path"}, "CONFIG"),
        ({"CONFIG": {"no_such_field": 1}}, "CONFIG"),
        ({"CONFIG": 42}, "CONFIG"),
        ({"DEBUG": "yes"}, "DEBUG"),
        ({"PDPS": 1}, "PDPS"),
    ],
)
def test_misconfiguration_is_a_typed_error_naming_the_key(
    site: Any, zerotrust: dict[str, Any], key: str
) -> None:
    site(**zerotrust)
    with pytest.raises(DjangoConfigError, match=key) as caught:
        Client().get("/health")
    assert isinstance(caught.value, WebConfigError)
    assert isinstance(caught.value, ImproperlyConfigured)


def test_missing_settings_are_a_typed_error(site: Any) -> None:
    with override_settings(ZEROTRUST=None), pytest.raises(DjangoConfigError, match="ZEROTRUST"):
        Client().get("/health")


def test_requires_checks_its_arguments() -> None:
    from zerotrust.web.django import requires

    with pytest.raises(WebConfigError, match="resource_type"):
        requires("", "read")
    with pytest.raises(WebConfigError, match="resource_id"):
        requires("customer_record", "read", resource_id="")


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    auth=st.one_of(
        st.none(),
        st.text(max_size=40),
        st.builds(lambda t: f"Bearer {t}", st.text(max_size=60)),
    )
)
def test_no_forged_or_odd_authorization_header_reaches_a_declared_view(
    client: Client, auth: str | None
) -> None:
    headers = {} if auth is None else {"authorization": auth}
    try:
        r = client.get("/customers/c-1001", headers=headers)
    except ValueError:
        return  # Django refuses a header with control characters before any view
    assert r.status_code == 401
    assert b"4111" not in r.content
    assert calls() == []


def test_webconfig_in_settings_is_used_as_given(site: Any) -> None:
    # no tokenizer: a tokenize obligation is refused
    config = WebConfig(jwt=CONFIG.jwt, device=CONFIG.device)
    site(CONFIG=config)
    headers = {
        **bearer(sub="u-max", roles=("manager",)),
        "x-device-attestation": attestation("u-max"),
    }
    r = Client().get("/departments/support/export", headers=headers)
    assert r.status_code == 403 and r.json()["code"] == "obligation_unsupported"


def test_a_declared_view_called_from_another_does_not_run_under_its_allow(
    client: Client,
) -> None:
    # c-1001 is allowed, c-5150 (billing) is not: the inner view must not borrow the allow
    with pytest.raises(DjangoConfigError, match="another view"):
        client.get("/nested/c-1001", headers=bearer())
    assert calls() == ["c-1001"]


def test_an_empty_body_passes_with_its_status(client: Client) -> None:
    r = client.get("/empty/c-1001", headers=bearer())
    assert r.status_code == 204 and r.content == b""


def test_async_streamed_json_gets_the_obligations_under_asgi(site: Any) -> None:
    headers = {
        **bearer(sub="u-max", roles=("manager",)),
        "x-device-attestation": attestation("u-max"),
    }

    async def run() -> bytes:
        r = await AsyncClient().get("/async-export/support", headers=headers)
        assert r.status_code == 200 and r.is_async
        return b"".join([chunk async for chunk in r.streaming_content])

    body = asyncio.run(run())
    assert b"tok_k1_" in body and b"example.com" not in body and b"4111" not in body


def test_async_streamed_json_under_wsgi_is_withheld_not_sent_unmasked(client: Client) -> None:
    headers = {
        **bearer(sub="u-max", roles=("manager",)),
        "x-device-attestation": attestation("u-max"),
    }
    r = client.get("/async-export/support", headers=headers)
    assert r.status_code == 500 and r.json()["code"] == "obligation_failed"


def test_head_is_decided_on_the_get_route_and_logged_with_its_real_method(
    client: Client, log: RecordingLog
) -> None:
    assert client.head("/customers/c-1001", headers=bearer()).status_code == 200
    _, request, extra = log.last
    assert request.action.name == "read" and request.context["method"] == "HEAD"
    assert extra["http"]["method"] == "HEAD"
    assert extra["http"]["route"] == "GET /customers/<str:customer_id>"
    assert client.head("/cards/c-1001", headers=bearer()).status_code == 200  # View alias
    assert log.last[2]["http"]["route"] == "GET /cards/<str:customer_id>"


class Remote:
    """A DecisionPoint that is not a PolicyDecisionPoint (as zerotrust.client's is)."""

    def __init__(self, pdp: PolicyDecisionPoint | None) -> None:
        self.pdp = pdp

    def evaluate(self, request: Any, *, extra: Any = None) -> Any:
        if self.pdp is None:
            raise ConnectionError("the PDP cannot be reached")
        return self.pdp.evaluate(request, extra=extra)

    async def evaluate_async(self, request: Any, *, extra: Any = None) -> Any:
        return self.evaluate(request, extra=extra)


def test_any_decision_point_is_accepted_and_an_unreachable_one_refuses(
    site: Any, log: RecordingLog
) -> None:
    site(PDP=Remote(shipped_pdp(log)))
    r = Client().get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    site(PDP=Remote(None))
    r = Client(raise_request_exception=False).get("/customers/c-1001", headers=bearer())
    assert r.status_code == 500 and b"4111" not in r.content
    assert calls() == ["c-1001"]


def test_a_request_the_pdp_refuses_for_its_attributes_is_a_400(site: Any) -> None:
    """``schema_validation="enforce"``: the view's properties lack the required
    ``region``; refused in ``process_view`` before the view runs, naming the field."""
    site(PDP=schema_pdp("enforce"))
    r = Client().get("/customers/c-1001", headers=bearer())
    assert_invalid_request(r.status_code, r["content-type"], r.json())
    assert calls() == []
