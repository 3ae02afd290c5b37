"""ZeroTrustPermission through DRF's APIClient, under the Django middleware, with real
signed tokens: refusals are the WSGI middleware's, never DRF's own 403."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from web_helpers import (
    RecordingLog,
    assert_invalid_request,
    attestation,
    bearer,
    django_urls,
    rogue_key,
    schema_pdp,
    shipped_pdp,
    token,
    web_config,
)

from zerotrust import Effect
from zerotrust.web import parse_challenges

pytest.importorskip("rest_framework")

from django.test.utils import override_settings

from zerotrust.web.django import DjangoConfigError

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}


@pytest.fixture
def log() -> Iterator[RecordingLog]:
    yield RecordingLog()


@pytest.fixture
def client(log: RecordingLog) -> Iterator[Any]:
    with (
        django_urls([]),
        override_settings(
            ROOT_URLCONF="django_site.drf_urls",
            MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"],
            ZEROTRUST={"PDP": shipped_pdp(log), "CONFIG": web_config()},
            REST_FRAMEWORK=REST_FRAMEWORK,
        ),
    ):
        from django_site import drf_views
        from rest_framework.test import APIClient

        drf_views.CALLS.clear()
        yield APIClient()
        drf_views.CALLS.clear()


def calls() -> list[str]:
    from django_site import drf_views

    return drf_views.CALLS


def test_object_permission_decides_on_the_objects_fields_and_masks(
    client: Any, log: RecordingLog
) -> None:
    r = client.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200
    assert r.json()["card_number"] == "****" and r.json()["ssn"] == "****"
    decision, req, extra = log.last
    assert r.json()["decision"] == decision.decision_id and decision.effect is Effect.ALLOW
    assert req.resource.id == "c-1001"
    assert dict(req.resource.properties) == {"owner_dept": "support", "sensitivity": 2}
    assert extra["http"]["url_name"] == "customer"


def test_deny_is_zerotrusts_problem_json_not_drfs_403(client: Any, log: RecordingLog) -> None:
    r = client.get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403 and r["content-type"] == "application/problem+json"
    assert r.json()["code"] == "access_denied"
    assert r.json()["decision_id"] == log.last[0].decision_id
    assert calls() == []


def test_step_up_then_retry_with_mfa(client: Any) -> None:
    r = client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
    assert r.status_code == 401 and r.json()["code"] == "step_up_required"
    [challenge] = parse_challenges(r["www-authenticate"])
    assert challenge.params["error"] == "insufficient_user_authentication"
    r = client.get("/customers/c-1002", headers=bearer())
    assert r.status_code == 200 and r.json()["ssn"] == "****"
    assert calls() == ["c-1002"]


@pytest.mark.parametrize(
    ("headers", "error"),
    [({}, None), (bearer(token(key=rogue_key())), "invalid_token")],
    ids=["missing", "forged"],
)
def test_missing_and_invalid_tokens_get_the_bearer_challenge(
    client: Any, headers: dict[str, str], error: str | None
) -> None:
    r = client.get("/customers/c-1001", headers=headers)
    assert r.status_code == 401 and r.json()["code"] == (error or "missing_token")
    [challenge] = parse_challenges(r["www-authenticate"])
    assert challenge.params.get("error") == error
    assert calls() == []


def test_a_view_that_never_checks_the_object_is_withheld(client: Any) -> None:
    with pytest.raises(DjangoConfigError, match="object permissions"):
        client.get("/unchecked/c-1001", headers=bearer())


def test_an_unknown_object_is_drfs_404(client: Any, log: RecordingLog) -> None:
    assert client.get("/customers/c-9999", headers=bearer()).status_code == 404
    assert log.entries == [] and calls() == []


def test_without_an_object_in_the_url_has_permission_decides(
    client: Any, log: RecordingLog
) -> None:
    r = client.get("/departments/support/export", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "access_denied"
    request = log.last[1]
    assert request.action.name == "export" and request.resource.id is None
    assert request.context["path_params"] == {"dept": "support"}
    assert calls() == []


def test_an_undeclared_view_is_a_configuration_error(client: Any) -> None:
    with pytest.raises(DjangoConfigError, match="zerotrust_resource_type"):
        client.get("/undeclared", headers=bearer())
    assert calls() == []


def test_a_write_that_checks_the_object_is_decided_on_its_fields(
    client: Any, log: RecordingLog
) -> None:
    client.patch("/checked-write/c-1001", headers=bearer())
    decision, req, _ = log.last
    assert req.resource.id == "c-1001" and req.action.name == "update"
    assert dict(req.resource.properties) == {"owner_dept": "support", "sensitivity": 2}
    assert (calls() == ["patched c-1001"]) == (decision.effect is Effect.ALLOW)


def test_a_write_that_does_not_check_the_object_is_decided_before_it_runs(
    client: Any, log: RecordingLog
) -> None:
    r = client.patch("/unchecked-write/c-1001")  # no token: refused before the view
    assert r.status_code == 401 and calls() == []
    client.patch("/unchecked-write/c-1001", headers=bearer())
    decision, req, _ = log.last
    assert req.resource.id == "c-1001" and dict(req.resource.properties) == {}
    assert (calls() == ["patched c-1001"]) == (decision.effect is Effect.ALLOW)


def test_a_list_decides_each_object_and_drops_the_refused(client: Any, log: RecordingLog) -> None:
    # anna (support agent, no MFA): c-1001 allowed and masked, c-1002 asks a step-up,
    # c-5150 is billing's: only c-1001 is listed, and each object's decision is logged
    on_a_managed_laptop = {"x-device-attestation": attestation("u-anna")}
    r = client.get("/api/customers/", headers={**bearer(amr=("pwd",)), **on_a_managed_laptop})
    assert r.status_code == 200
    assert [c["id"] for c in r.json()] == ["c-1001"]
    assert r.json()[0]["card_number"] == "****" and r.json()[0]["ssn"] == "****"
    decided = {req.resource.id: d.effect for d, req, _ in log.entries}
    assert decided == {"c-1001": Effect.ALLOW, "c-1002": Effect.STEP_UP, "c-5150": Effect.DENY}
    assert all(
        dict(req.resource.properties).keys() == {"owner_dept", "sensitivity"}
        for _, req, _ in log.entries
    )
    r = client.get("/api/customers/", headers=bearer())  # with MFA, c-1002 too
    assert [c["id"] for c in r.json()] == ["c-1001", "c-1002"]
    assert all(c["ssn"] == "****" for c in r.json())


def test_a_list_for_a_caller_who_is_nobody_is_the_bearer_challenge(
    client: Any, log: RecordingLog
) -> None:
    r = client.get("/api/customers/")
    assert r.status_code == 401 and r["www-authenticate"] == "Bearer"
    assert log.last[1].subject.id == "anonymous"


def test_the_viewsets_detail_is_decided_on_the_model_instance(
    client: Any, log: RecordingLog
) -> None:
    r = client.get("/api/customers/c-1001/", headers=bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    assert len(log.entries) == 1  # the filter left the detail to the object permission
    request = log.last[1]
    assert request.context["route"] == "GET /api/customers/(?P<pk>[^/.]+)/"  # no anchors
    assert request.resource.id == "c-1001"
    assert dict(request.resource.properties) == {"owner_dept": "support", "sensitivity": 2}
    r = client.get("/api/customers/c-5150/", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "access_denied"


def test_a_list_that_never_runs_the_filter_is_withheld(client: Any) -> None:
    with pytest.raises(DjangoConfigError, match="filter_queryset"):
        client.get("/unfiltered/", headers=bearer())


def test_has_permission_without_an_object_gets_the_views_properties(
    client: Any, log: RecordingLog
) -> None:
    r = client.get("/departments/support/customers", headers=bearer())
    assert r.status_code == 200 and [c["ssn"] for c in r.json()] == ["****"]
    request = log.last[1]
    assert request.resource.id is None
    assert dict(request.resource.properties) == {"owner_dept": "support", "sensitivity": 2}
    assert request.context["path_params"] == {"dept": "support"}
    r = client.get("/departments/billing/customers", headers=bearer())
    assert r.status_code == 403 and r["content-type"] == "application/problem+json"


@pytest.mark.parametrize("path", ["/refused/c-1001", "/refused-list/"])
def test_a_permission_after_ours_that_refuses_is_drfs_403_not_a_500(client: Any, path: str) -> None:
    r = client.get(path, headers=bearer())
    assert r.status_code == 403
    assert r.json() == {"detail": "refused by the next permission"}


def test_head_is_decided_as_get_and_logged_with_its_real_method(
    client: Any, log: RecordingLog
) -> None:
    r = client.head("/customers/c-1001", headers=bearer())
    assert r.status_code == 200
    _, request, extra = log.last
    assert request.action.name == "read" and request.context["method"] == "HEAD"
    assert request.context["route"] == "GET /customers/<str:customer_id>"
    assert extra["http"]["method"] == "HEAD"
    assert extra["http"]["route"] == "GET /customers/<str:customer_id>"


@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    department=st.sampled_from(["support", "billing", "sales"]),
    roles=st.lists(st.sampled_from(["agent", "manager", "auditor"]), max_size=2, unique=True),
    mfa=st.booleans(),
    managed=st.booleans(),
)
def test_the_list_holds_exactly_the_records_the_detail_view_releases(
    client: Any, department: str, roles: list[str], mfa: bool, managed: bool
) -> None:
    """ZeroTrustFilter and has_object_permission decide each record alike: no record is
    listed that its own URL would refuse, none left out that it would release. A fresh PDP
    each time, warmed by one request, so the behaviour store (first device seen, request
    counts) does not change the answer between the list and the details."""
    amr = ("pwd", "mfa") if mfa else ("pwd",)
    headers = bearer(department=department, roles=tuple(roles), amr=amr)
    if managed:
        headers["x-device-attestation"] = attestation("u-anna")
    with override_settings(ZEROTRUST={"PDP": shipped_pdp(), "CONFIG": web_config()}):
        client.get("/api/customers/", headers=headers)
        listed = client.get("/api/customers/", headers=headers)
        assert listed.status_code == 200
        released = {
            rid: r.json()
            for rid in ("c-1001", "c-1002", "c-5150")
            if (r := client.get(f"/api/customers/{rid}/", headers=headers)).status_code == 200
        }
    assert {c["id"]: c for c in listed.json()} == released


def test_a_request_the_pdp_refuses_for_its_attributes_is_a_400(log: RecordingLog) -> None:
    """``schema_validation="enforce"``: the object's fields lack the required ``region``;
    the permission answers 400 naming the field, the view's body never runs."""
    with (
        django_urls([]),
        override_settings(
            ROOT_URLCONF="django_site.drf_urls",
            MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"],
            ZEROTRUST={"PDP": schema_pdp("enforce", log), "CONFIG": web_config()},
            REST_FRAMEWORK=REST_FRAMEWORK,
        ),
    ):
        from rest_framework.test import APIClient

        calls().clear()
        r = APIClient().get("/customers/c-1001", headers=bearer())
        assert_invalid_request(r.status_code, r["content-type"], r.json())
        assert calls() == []
