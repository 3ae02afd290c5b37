"""zerotrust.web.django_backend.ZeroTrustBackend: ``user.has_perm`` asks the PDP, with
ModelBackend installed after it and the user holding the permission in the database, so
a refusal that Django let another backend overrule would show."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from web_helpers import RecordingLog, bearer, django_setup, shipped_pdp, web_config

from zerotrust import Effect
from zerotrust.web import WebConfigError, parse_challenges

pytest.importorskip("django")

BACKENDS = [
    "zerotrust.web.django_backend.ZeroTrustBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PERMISSIONS = {
    "customers.view_customer": ("customer_record", "read"),
    "customers.change_customer": ("customer_record", "update"),
}
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "zerotrust.web.django.ZeroTrustMiddleware",
]


@pytest.fixture
def log() -> Iterator[RecordingLog]:
    django_setup()
    from django_site import perm_views

    perm_views.CALLS.clear()
    yield RecordingLog()
    perm_views.CALLS.clear()


def calls() -> list[str]:
    from django_site import perm_views

    return perm_views.CALLS


@pytest.fixture
def settings_for(log: RecordingLog) -> Iterator[Any]:
    from django.test.utils import override_settings

    def make(**over: Any) -> Any:
        zerotrust = {"PDP": shipped_pdp(log), "CONFIG": web_config(), "PERMISSIONS": PERMISSIONS}
        options = {
            "ROOT_URLCONF": "django_site.perm_views",
            "MIDDLEWARE": MIDDLEWARE,
            "AUTHENTICATION_BACKENDS": BACKENDS,
            "ZEROTRUST": zerotrust,
            **over,
        }
        return override_settings(**options)

    yield make


@pytest.fixture
def users(log: RecordingLog) -> Iterator[Any]:
    """anna and bo, each holding every customers permission in Django's database."""
    from django.contrib.auth.models import Permission, User

    made = []
    for name in ("anna", "bo"):
        user = User.objects.create_user(name)
        user.user_permissions.set(Permission.objects.filter(content_type__app_label="customers"))
        made.append(User.objects.get(pk=user.pk))  # a fresh one: no permission cache
    yield made
    User.objects.filter(pk__in=[u.pk for u in made]).delete()


@pytest.fixture
def client(settings_for: Any, users: Any) -> Iterator[Any]:
    from django.test import Client

    with settings_for():
        client = Client()
        client.force_login(users[0])
        yield client


def test_the_user_holds_the_permissions_in_the_database(users: Any) -> None:
    from django.contrib.auth.backends import ModelBackend

    assert ModelBackend().has_perm(users[0], "customers.view_customer")


def test_allow_through_has_perm_masks_and_is_logged(client: Any, log: RecordingLog) -> None:
    r = client.get("/page/c-1001", headers=bearer())
    assert r.status_code == 200
    assert r.json()["card_number"] == "****" and r.json()["name"] == "Ada Berg"
    decision, request, extra = log.last
    assert decision.effect is Effect.ALLOW and request.subject.id == "u-anna"
    assert request.action.name == "read" and request.resource.id == "c-1001"
    assert dict(request.resource.properties) == {"owner_dept": "support", "sensitivity": 2}
    assert extra["http"]["url_name"] == "page"
    assert calls() == ["c-1001"]


def test_deny_through_has_perm_with_the_object_is_problem_json(
    client: Any, log: RecordingLog
) -> None:
    r = client.get("/page/c-5150", headers=bearer())
    assert r.status_code == 403 and r["content-type"] == "application/problem+json"
    assert r.json()["code"] == "access_denied"
    assert r.json()["decision_id"] == log.last[0].decision_id
    assert client.get("/by-hand/c-5150", headers=bearer()).status_code == 403
    assert calls() == []


def test_without_an_object_the_pdp_decides_with_no_resource_id(
    client: Any, log: RecordingLog
) -> None:
    # ModelBackend answers only object-less checks: this is where it would grant
    r = client.get("/change-any", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "access_denied"
    request = log.last[1]
    assert request.action.name == "update" and request.resource.id is None
    assert calls() == []


def test_step_up_is_the_rfc_9470_challenge_then_mfa_allows(client: Any) -> None:
    r = client.get("/page/c-1002", headers=bearer(amr=("pwd",)))
    assert r.status_code == 401 and r.json()["code"] == "step_up_required"
    [challenge] = parse_challenges(r["www-authenticate"])
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert calls() == []
    r = client.get("/page/c-1002", headers=bearer())
    assert r.status_code == 200 and r.json()["ssn"] == "****"
    assert calls() == ["c-1002"]


def test_a_missing_token_is_the_bearer_challenge(client: Any) -> None:
    r = client.get("/page/c-1001")
    assert r.status_code == 401 and r["www-authenticate"] == "Bearer"
    assert calls() == []


def test_a_permission_zerotrust_does_not_govern_is_left_to_modelbackend(
    client: Any, log: RecordingLog
) -> None:
    r = client.get("/delete-any", headers=bearer())
    assert r.status_code == 200 and log.entries == []


def test_a_page_asking_has_perm_renders_with_the_answer_and_never_for_another_user(
    client: Any,
) -> None:
    r = client.get("/can-view/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json() == {"mine": True, "other": False}
    r = client.get("/can-view/c-5150", headers=bearer())
    assert r.status_code == 200 and r.json() == {"mine": False, "other": False}


def test_outside_a_request_a_governed_permission_is_refused(settings_for: Any, users: Any) -> None:
    anna = users[0]
    with settings_for():
        assert not anna.has_perm("customers.view_customer")
        assert anna.has_perm("customers.delete_customer")  # not governed: ModelBackend's


def test_the_backend_after_modelbackend_is_a_configuration_error(
    settings_for: Any, users: Any
) -> None:
    from django.test import Client

    from zerotrust.web.django import DjangoConfigError

    with (
        settings_for(AUTHENTICATION_BACKENDS=BACKENDS[::-1]),
        pytest.raises(DjangoConfigError, match="first"),
    ):
        Client().get("/page/c-1001", headers=bearer())


@pytest.mark.parametrize(
    "permissions",
    [
        ["customers.view_customer"],
        {"view_customer": ("customer_record", "read")},
        {"customers.view_customer": ("customer_record",)},
        {"customers.view_customer": ["customer_record", "read"]},
    ],
)
def test_a_malformed_permissions_map_is_a_typed_error(
    settings_for: Any, users: Any, log: RecordingLog, permissions: Any
) -> None:
    from django.test import Client

    zerotrust = {"PDP": shipped_pdp(log), "CONFIG": web_config(), "PERMISSIONS": permissions}
    with settings_for(ZEROTRUST=zerotrust), pytest.raises(WebConfigError, match="PERMISSIONS"):
        Client().get("/page/c-1001", headers=bearer())


def test_async_ahas_perm_asks_the_pdp_and_modelbackend_cannot_overrule_it(
    settings_for: Any, users: Any, log: RecordingLog
) -> None:
    """Django's ahas_perm skips a backend without ahas_perm: ModelBackend would grant."""
    from django.test import AsyncClient

    async def run() -> list[Any]:
        client = AsyncClient()
        await client.aforce_login(users[0])
        return [
            await client.get("/async-page/c-1001", headers=bearer()),
            await client.get("/async-page/c-5150", headers=bearer()),
            await client.get("/async-page/c-1002", headers=bearer(amr=("pwd",))),
            await client.get("/async-change-any", headers=bearer()),
        ]

    with settings_for():
        allowed, denied, step_up, no_object = asyncio.run(run())
    assert allowed.status_code == 200 and allowed.json()["card_number"] == "****"
    assert denied.status_code == 403 and denied.json()["code"] == "access_denied"
    assert step_up.status_code == 401 and step_up.json()["code"] == "step_up_required"
    assert no_object.status_code == 403  # what ModelBackend grants without an object
    effects = [d.effect for d, _, _ in log.entries]
    assert effects == [Effect.ALLOW, Effect.DENY, Effect.STEP_UP, Effect.DENY]
    assert calls() == ["c-1001"]
