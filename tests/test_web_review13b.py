"""Review of issue 13's framework integrations: each test is named after an attack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from web_helpers import RecordingLog, bearer, django_urls, shipped_pdp, web_config

pytest.importorskip("rest_framework")

from django.test.utils import override_settings

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}


def _viewset_urls() -> list[Any]:
    from django_site.customers.models import Customer
    from rest_framework import viewsets
    from rest_framework.decorators import action
    from rest_framework.response import Response
    from rest_framework.routers import SimpleRouter

    from zerotrust.web.drf import ZeroTrustFilter, ZeroTrustPermission

    class Records(viewsets.ReadOnlyModelViewSet):  # type: ignore[misc]
        permission_classes = (ZeroTrustPermission,)
        filter_backends = (ZeroTrustFilter,)
        queryset = Customer.objects.all()
        zerotrust_resource_type = "customer_record"
        # A viewset action's own entry is more specific than the method's.
        zerotrust_actions = {"GET": "read", "export": "export"}  # noqa: RUF012

        @action(detail=False, methods=["get"])  # type: ignore[misc]
        def export(self, request: Any) -> Response:
            rows = self.filter_queryset(self.get_queryset())
            return Response([{"id": c.pk, "card_number": c.card_number} for c in rows])

    class Typo(viewsets.ReadOnlyModelViewSet):  # type: ignore[misc]
        permission_classes = (ZeroTrustPermission,)
        queryset = Customer.objects.all()
        zerotrust_resource_type = "customer_record"
        zerotrust_action = "read"
        zerotrust_properties = {"owner_dept": "owner_dept", "sensitivity": "sensitivty"}  # noqa: RUF012

        def retrieve(self, request: Any, pk: str) -> Response:
            return Response({"id": self.get_object().pk})

    router = SimpleRouter()
    router.register("records", Records, basename="records")
    router.register("typo", Typo, basename="typo")
    return list(router.urls)


@pytest.fixture
def drf_client() -> Iterator[tuple[Any, RecordingLog]]:
    log = RecordingLog()
    with django_urls([]):
        urls = _viewset_urls()
        with (
            django_urls(urls),
            override_settings(
                MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"],
                ZEROTRUST={"PDP": shipped_pdp(log), "CONFIG": web_config()},
                REST_FRAMEWORK=REST_FRAMEWORK,
            ),
        ):
            from rest_framework.test import APIClient

            yield APIClient(), log


def test_viewset_extra_action_is_not_decided_as_the_methods_action(
    drf_client: tuple[Any, RecordingLog],
) -> None:
    """@action(detail=False) export on GET: decided as "export", not as GET's "read"."""
    client, log = drf_client
    r = client.get("/records/export/", headers=bearer())
    _, req, _ = log.last
    assert req.action.name == "export"
    assert r.status_code == 200 and r.json() == []  # an agent exports nothing


def test_misspelt_property_field_is_a_config_error_not_a_missing_property(
    drf_client: tuple[Any, RecordingLog],
) -> None:
    client, log = drf_client
    from django_site.customers.models import Customer

    from zerotrust.web.django_backend import object_properties
    from zerotrust.web.django_config import DjangoConfigError

    record = Customer.objects.first()
    client.raise_request_exception = False
    r = client.get(f"/typo/{record.pk}/", headers=bearer())
    assert r.status_code == 500 and b"c-" not in r.content
    assert not log.entries  # never decided without the property
    with pytest.raises(DjangoConfigError, match="sensitivty"):
        object_properties({"sensitivity": "sensitivty"}, record)


def test_lowercase_method_is_decided_as_the_method_django_serves() -> None:
    from django.test import RequestFactory

    from zerotrust.web._pep import Gate
    from zerotrust.web.django import decide
    from zerotrust.web.http import Target

    log = RecordingLog()
    with django_urls([]):
        request = RequestFactory().get("/x", headers=bearer())
        request.META["REQUEST_METHOD"] = "delete"
        request.method = "DELETE"
        gate = Gate(shipped_pdp(log), lambda http: None, web_config())
        decide(gate, request, Target("customer_record", "read", "c-1001", {}, {}, "DELETE /x"))
    _, req, extra = log.last
    assert req.context["method"] == "DELETE"
    assert extra["http"]["method"] == "DELETE"


@pytest.mark.parametrize("method", ["DELETE", "PUT", "OPTIONS", "TRACE", "PROPFIND"])
def test_undeclared_method_without_handler_is_drfs_405_not_a_500(
    drf_client: tuple[Any, RecordingLog], method: str
) -> None:
    """Any client could turn a method the view never serves into a 500 and a traceback."""
    client, log = drf_client
    from django_site.customers.models import Customer

    pk = Customer.objects.first().pk
    client.raise_request_exception = False
    for url in (f"/records/{pk}/", "/records/"):
        r = client.generic(method, url, headers=bearer())
        assert r.status_code == 405, (url, r.status_code, r.content[:200])
        assert b"card_number" not in r.content
    assert not log.entries
