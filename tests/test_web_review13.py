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
    with django_urls(urls), override_settings(
        MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"], ZEROTRUST=zerotrust
    ):
        Client().get("/cards/c-1001/update", headers=bearer())
    assert log.last[1].action.name == "update"
