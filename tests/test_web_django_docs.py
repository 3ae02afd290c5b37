"""The Django section of docs/integration.md (DRF included) runs as written, on the
page's shared set-up."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest
from test_web_docs import Site, code, site  # noqa: F401  (the fixture)
from web_helpers import django_urls

pytest.importorskip("rest_framework")

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}


MODEL_BLOCK = "# customers/models.py\n"


def run_section(page_site: Site, stack: ExitStack) -> dict[str, Any]:
    """The set-up, then every Python block of the Django section in one namespace; the
    model block is the test site's model, checked verbatim instead of defined twice.
    Once a block defines ``ZEROTRUST`` it is Django's setting, as in a settings module
    (the Channels middleware reads it when the page builds it)."""
    from django.test.utils import override_settings
    from django_site.customers import models

    namespace = page_site.run()
    applied = False
    for block in code("## Django"):
        if block.startswith(MODEL_BLOCK):
            assert block.removeprefix(MODEL_BLOCK) in Path(models.__file__).read_text()
            namespace["Customer"] = models.Customer
            continue
        exec(compile(block, "integration.md ## Django", "exec"), namespace)
        if "ZEROTRUST" in namespace and not applied:
            stack.enter_context(override_settings(ZEROTRUST=namespace["ZEROTRUST"]))
            applied = True
    return namespace


@contextmanager
def django_page(page_site: Site) -> Iterator[dict[str, Any]]:
    """Django set up (DRF reads its settings on import), then the page's blocks run."""
    from django.test.utils import override_settings

    with (
        django_urls([]),
        override_settings(REST_FRAMEWORK=REST_FRAMEWORK),
        ExitStack() as stack,
    ):
        page = run_section(page_site, stack)
        urls = type("PageURLs", (), {"urlpatterns": page["urlpatterns"]})
        with override_settings(
            ROOT_URLCONF=urls,
            MIDDLEWARE=page["MIDDLEWARE"],
            ZEROTRUST=page["ZEROTRUST"],
            AUTHENTICATION_BACKENDS=page["AUTHENTICATION_BACKENDS"],
        ):
            yield page


def test_django_section_runs_as_written(site: Site) -> None:  # noqa: F811
    from django.test import Client

    with django_page(site):
        client = Client()
        r = client.get("/customers/c-1001", headers=site.bearer())
        assert r.status_code == 200 and r.json()["card_number"] == "****"
        r = client.get("/customers/c-1001", headers=site.bearer("billing"))
        assert r.status_code == 403 and r.json()["code"] == "access_denied"
        r = client.get("/customers/c-1001")
        assert r.status_code == 401 and r["www-authenticate"] == "Bearer"
        assert client.get("/health").json() == {"status": "ok"}
        r = client.get("/departments/support/export", headers=site.bearer())
        assert r.status_code == 403  # an agent may not export


def test_drf_permission_runs_as_written(site: Site) -> None:  # noqa: F811
    with django_page(site):
        from rest_framework.test import APIClient

        client = APIClient()
        r = client.get("/api/customers/c-1001", headers=site.bearer())
        assert r.status_code == 200 and r.json()["card_number"] == "****"
        r = client.get("/api/customers/c-1001", headers=site.bearer("billing"))
        assert r.status_code == 403 and r["content-type"] == "application/problem+json"
        r = client.get("/api/customers/c-1001")
        assert r.status_code == 401 and r["www-authenticate"] == "Bearer"


def test_has_perm_section_runs_as_written(site: Site) -> None:  # noqa: F811
    from django.test import Client

    with django_page(site):
        client = Client()
        r = client.get("/pages/customers/c-1001", headers=site.bearer())
        assert r.status_code == 200 and r.json()["card_number"] == "****"
        r = client.get("/pages/customers/c-1001", headers=site.bearer("billing"))
        assert r.status_code == 403 and r.json()["code"] == "access_denied"
        r = client.get("/pages/customers/c-1001")
        assert r.status_code == 401 and r["www-authenticate"] == "Bearer"


def test_drf_viewset_with_the_filter_runs_as_written(site: Site) -> None:  # noqa: F811
    with django_page(site):
        from rest_framework.test import APIClient

        client = APIClient()
        r = client.get("/api/records/", headers=site.bearer())
        assert r.status_code == 200
        assert [c["id"] for c in r.json()] == ["c-1001", "c-1002"]
        assert {c["card_number"] for c in r.json()} == {"****"}
        r = client.get("/api/records/", headers=site.bearer("billing"))
        assert [c["id"] for c in r.json()] == ["c-5150"]
        r = client.get("/api/records/c-5150/", headers=site.bearer())
        assert r.status_code == 403 and r.json()["code"] == "access_denied"
        assert client.get("/api/records/").status_code == 401


def test_channels_section_runs_as_written(site: Site) -> None:  # noqa: F811
    import asyncio

    from channels.testing import WebsocketCommunicator

    async def first(app: Any, headers: dict[str, str]) -> dict[str, Any]:
        raw = [(k.encode(), v.encode()) for k, v in headers.items()]
        communicator = WebsocketCommunicator(app, "/ws/customers/c-1001/live", headers=raw)
        connected, code = await communicator.connect()
        if not connected:
            return {"closed": code}
        change: dict[str, Any] = await communicator.receive_json_from()
        await communicator.disconnect()
        return change

    with django_page(site) as page:
        app = page["application"]
        change = asyncio.run(first(app, site.bearer()))
        assert change["id"] == "c-1001" and change["card_number"] == "****"
        assert asyncio.run(first(app, site.bearer("billing"))) == {"closed": 1008}
        assert asyncio.run(first(app, {})) == {"closed": 1008}
