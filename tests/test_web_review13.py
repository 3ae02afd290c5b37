"""Review 13: attacks on the framework integrations, each a test named after its attack."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from web_helpers import RecordingLog, bearer, django_urls, shipped_pdp, web_config

pytest.importorskip("django")

from django.test import Client
from django.test.utils import override_settings
from django.urls import path


@pytest.fixture
def log() -> Iterator[RecordingLog]:
    from django_site import views

    views.CALLS.clear()
    yield RecordingLog()
    views.CALLS.clear()


def test_django_as_view_initkwargs_cannot_change_what_was_decided(log: RecordingLog) -> None:
    """``CardView.as_view(action="update")``: Django lets as_view() override the class's
    ``action``; the decision must be for the action the route declares, not the class's."""
    from django_site import views

    urls = [path("cards/<str:customer_id>/update", views.CardView.as_view(action="update"))]
    zerotrust = {"PDP": shipped_pdp(log), "CONFIG": web_config()}
    with (
        django_urls(urls),
        override_settings(
            MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"], ZEROTRUST=zerotrust
        ),
    ):
        Client().get("/cards/c-1001/update", headers=bearer())
    assert log.last[1].action.name == "update"


def test_flask_requires_above_the_route_decorator_does_not_serve_undecided() -> None:
    """``@zt.requires`` above ``@app.get``: Flask registered the bare function, so the
    declaration guards nothing; the view must not run undecided (a loud failure)."""
    from flask import Flask

    from zerotrust.web.flask import ZeroTrust

    ran: list[str] = []
    app = Flask(__name__)
    zt = ZeroTrust(app, pdp=shipped_pdp(RecordingLog()), config=web_config())

    @zt.requires("customer_record", "read", resource_id="id")
    @app.get("/customers/<id>")
    def read(id: str) -> Any:
        ran.append(id)
        return {"ssn": "123-45-6789"}

    r = app.test_client().get("/customers/c-5150")  # no token at all
    assert ran == [] and r.status_code >= 400 and b"123-45" not in r.data


def test_drf_write_without_object_check_is_decided_before_the_view_runs(
    log: RecordingLog,
) -> None:
    """The attack: a DRF view under a URL with the object's id that writes without
    ``get_object()``. Deferring to an object check that never comes let the write
    happen with no decision (only its response was withheld afterwards); a write the
    view is not known to check the object for is decided before the view runs."""
    pytest.importorskip("rest_framework")
    from rest_framework.response import Response
    from rest_framework.test import APIClient
    from rest_framework.views import APIView

    from zerotrust.web.drf import ZeroTrustPermission

    erased: list[str] = []

    class Erase(APIView):
        permission_classes = (ZeroTrustPermission,)
        zerotrust_resource_type = "customer_record"
        zerotrust_action = "update"
        zerotrust_resource_id_kwarg = "customer_id"

        def post(self, request: Any, customer_id: str) -> Response:
            erased.append(customer_id)  # the write, before any decision
            return Response(status=204)

    zerotrust = {"PDP": shipped_pdp(log), "CONFIG": web_config()}
    rest = {
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": [],
        "UNAUTHENTICATED_USER": None,
    }
    with (
        django_urls([path("erase/<str:customer_id>", Erase.as_view())]),
        override_settings(
            MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"],
            ZEROTRUST=zerotrust,
            REST_FRAMEWORK=rest,
        ),
    ):
        answer = APIClient().post("/erase/c-5150")  # no token: every decision refuses
    assert answer.status_code == 401
    assert erased == [], "the view wrote without a decision"


def test_drf_head_on_a_declared_detail_view_is_decided_as_get(log: RecordingLog) -> None:
    """HEAD is served by the GET handler (Django's View.setup); with
    ``zerotrust_actions = {"GET": "read"}`` it must be decided as ``read``, not a 500."""
    pytest.importorskip("rest_framework")
    from django.urls import include
    from rest_framework.test import APIClient

    zerotrust = {"PDP": shipped_pdp(log), "CONFIG": web_config()}
    rest = {
        "DEFAULT_AUTHENTICATION_CLASSES": [],
        "DEFAULT_PERMISSION_CLASSES": [],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "UNAUTHENTICATED_USER": None,
    }
    with (
        django_urls([path("", include("django_site.drf_urls"))]),
        override_settings(
            MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"],
            ZEROTRUST=zerotrust,
            REST_FRAMEWORK=rest,
        ),
    ):
        client = APIClient()
        assert client.head("/customers/c-1001", headers=bearer()).status_code == 200
        assert log.last[1].action.name == "read"
        assert client.head("/customers/c-5150", headers=bearer()).status_code == 403
