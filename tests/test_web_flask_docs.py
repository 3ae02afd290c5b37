"""The Flask section of docs/integration.md runs as written, on the page's shared set-up."""

from __future__ import annotations

from test_web_docs import Site, site  # noqa: F401  (the fixture)


def test_flask_extension_section_runs_as_written(site: Site) -> None:  # noqa: F811
    page = site.run("## Flask")
    client = page["app"].test_client()
    r = client.get("/customers/c-1001", headers=site.bearer())
    assert r.status_code == 200 and r.json["card_number"] == "****"
    assert client.get("/customers/c-1001", headers=site.bearer("billing")).status_code == 403
    assert client.get("/customers/c-1001").status_code == 401
    assert client.get("/health").json == {"status": "ok"}


def test_flask_factory_with_require_all(site: Site) -> None:  # noqa: F811
    client = site.run("## Flask")["create_app"]().test_client()
    r = client.get("/customers/c-1001", headers=site.bearer())
    assert r.status_code == 200 and r.json["card_number"] == "****"
    r = client.get("/static/app.css", headers=site.bearer())
    assert r.status_code == 404  # exempt: Flask's own answer
    r = client.get("/elsewhere", headers=site.bearer())
    assert r.status_code == 403 and r.json["code"] == "unmatched_route"
