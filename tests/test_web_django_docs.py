"""The Django section of docs/integration.md runs as written, on the page's shared set-up."""

from __future__ import annotations

import pytest
from test_web_docs import Site, site  # noqa: F401  (the fixture)
from web_helpers import django_urls

pytest.importorskip("django")


def test_django_section_runs_as_written(site: Site) -> None:  # noqa: F811
    from django.test import Client
    from django.test.utils import override_settings

    page = site.run("## Django")
    with (
        django_urls(page["urlpatterns"]),
        override_settings(MIDDLEWARE=page["MIDDLEWARE"], ZEROTRUST=page["ZEROTRUST"]),
    ):
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
