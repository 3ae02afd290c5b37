"""An allowed view that answers with an error keeps its error, in every integration.

A view the policies allow with obligations can still fail (``abort(404)``, ``Http404``,
``HTTPException(404)``) or redirect. Only a 2xx is the resource; the framework's error
or redirect page is released as it is when it is not JSON (withholding it turned every
404 into a 500), and a JSON one still has its fields masked. A success that is not JSON
is still withheld: that is data the obligations could not be applied to.
"""

import json
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from strategies import json_values
from web_helpers import django_urls

from zerotrust import Obligation, PolicyDecisionPoint
from zerotrust.web import WebConfig
from zerotrust.web._pep import rewrite_json
from zerotrust.web.obligations import ObligationPlan

POLICY = """
policy: p
target: {resources: [doc], actions: [read]}
rules:
  - id: allow
    effect: allow
    obligations: [{type: mask, fields: [secret]}, {type: limit, max: 2}]
"""
CONFLICT = {"secret": "hunter2", "items": [1, 2, 3, 4]}
MASKED_CONFLICT = {"secret": "****", "items": [1, 2, 3, 4]}
PLAN = ObligationPlan.compile(
    [
        Obligation("mask", {"fields": ["secret"]}, rule="p/allow"),
        Obligation("limit", {"max": 2}, rule="p/allow"),
    ]
)


def pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts({"p.yaml": POLICY})


def config() -> WebConfig:
    return WebConfig(identify=lambda http: {"id": "u"})


# --- the rule itself --------------------------------------------------------------------

NOT_JSON = st.sampled_from(["text/html; charset=utf-8", "text/plain", "application/xml", ""])


@given(status=st.integers(300, 599), media=NOT_JSON, body=st.binary(min_size=1))
def test_an_error_page_that_is_not_json_is_released_unchanged(
    status: int, media: str, body: bytes
) -> None:
    headers = [("content-type", media)] if media else []
    assert rewrite_json(status, headers, body, PLAN) == body


@given(status=st.integers(200, 299), media=NOT_JSON, body=st.binary(min_size=1))
def test_a_success_that_is_not_json_is_withheld(status: int, media: str, body: bytes) -> None:
    headers = [("content-type", media)] if media else []
    assert isinstance(rewrite_json(status, headers, body, PLAN), str)


@given(status=st.integers(400, 599), payload=json_values())
def test_a_json_error_body_is_masked_at_any_depth_and_never_cut(status: int, payload: Any) -> None:
    body = json.dumps({"secret": "hunter2", "nested": [payload, {"secret": 1}]}).encode()
    out = rewrite_json(status, [("content-type", "application/json")], body, PLAN)
    assert isinstance(out, bytes)
    released = json.loads(out)
    assert released["secret"] == "****" and released["nested"][1] == {"secret": "****"}
    assert b"hunter2" not in out


@given(status=st.integers(400, 599))
def test_a_compressed_json_error_body_is_still_withheld(status: int) -> None:
    headers = [("content-type", "application/json"), ("content-encoding", "gzip")]
    assert isinstance(rewrite_json(status, headers, b"\x1f\x8b", PLAN), str)


# --- each integration, through its real test client ---------------------------------------


def _starlette_middleware(endpoint: Any) -> TestClient:
    from zerotrust.web.asgi import ZeroTrustMiddleware

    app = Starlette(routes=[Route("/doc", endpoint)])
    app.add_middleware(
        ZeroTrustMiddleware, pdp=pdp(), resolve={"GET /doc": ("doc", "read")}, config=config()
    )
    return TestClient(app)


def _raise_not_found(request: Any) -> Any:
    raise StarletteHTTPException(404)


def test_not_found_in_an_allowed_asgi_route_with_obligations_stays_a_404() -> None:
    r = _starlette_middleware(_raise_not_found).get("/doc")
    assert r.status_code == 404 and r.text == "Not Found"
    r = _starlette_middleware(lambda request: JSONResponse(CONFLICT, status_code=409)).get("/doc")
    assert r.status_code == 409 and r.json() == MASKED_CONFLICT
    r = _starlette_middleware(lambda request: PlainTextResponse("hunter2")).get("/doc")
    assert r.status_code == 500 and "hunter2" not in r.text


def test_not_found_in_an_allowed_wsgi_route_with_obligations_stays_a_404() -> None:
    from werkzeug.test import Client

    from zerotrust.web.wsgi import ZeroTrustMiddleware

    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        start_response("404 Not Found", [("Content-Type", "text/html")])
        return [b"<h1>Not Found</h1>"]

    guarded = ZeroTrustMiddleware(
        app, pdp=pdp(), resolve={"GET /doc": ("doc", "read")}, config=config()
    )
    r = Client(guarded).get("/doc")
    assert r.status_code == 404 and r.data == b"<h1>Not Found</h1>"


def test_abort_404_in_an_allowed_flask_view_with_obligations_stays_a_404() -> None:
    from flask import Flask, abort

    from zerotrust.web.flask import ZeroTrust

    app = Flask(__name__)
    zt = ZeroTrust(app, pdp=pdp(), config=config())

    @app.get("/doc/<id>")
    @zt.requires("doc", "read", resource_id="id")
    def read(id: str) -> Any:
        if id != "conflict":
            abort(404)
        return CONFLICT, 409

    client = app.test_client()
    r = client.get("/doc/missing")
    assert r.status_code == 404 and b"Not Found" in r.data
    r = client.get("/doc/conflict")
    assert r.status_code == 409 and r.json == MASKED_CONFLICT


def test_redirect_from_an_allowed_flask_view_with_obligations_is_not_a_500() -> None:
    from flask import Flask, redirect

    from zerotrust.web.flask import ZeroTrust

    app = Flask(__name__)
    zt = ZeroTrust(app, pdp=pdp(), config=config())

    @app.get("/doc")
    @zt.requires("doc", "read")
    def read() -> Any:
        return redirect("/elsewhere")

    r = app.test_client().get("/doc")
    assert r.status_code == 302 and r.headers["location"] == "/elsewhere"


def test_http_exception_in_an_allowed_fastapi_route_with_obligations_keeps_its_status() -> None:
    from typing import Annotated

    from fastapi import Depends, FastAPI, HTTPException

    from zerotrust import Decision
    from zerotrust.web.fastapi import ZeroTrust

    zt = ZeroTrust(pdp(), config=config())
    app = FastAPI()

    @app.get("/doc/{id}")
    def read(
        id: str, d: Annotated[Decision, Depends(zt.requires("doc", "read", resource_id="id"))]
    ) -> Any:
        if id == "conflict":
            return JSONResponse(CONFLICT, status_code=409)
        raise HTTPException(404, detail={"secret": "hunter2"})

    zt.install(app)
    client = TestClient(app)
    r = client.get("/doc/missing")
    assert r.status_code == 404 and r.json() == {"detail": {"secret": "****"}}
    r = client.get("/doc/conflict")
    assert r.status_code == 409 and r.json() == MASKED_CONFLICT


def test_http404_in_an_allowed_django_view_with_obligations_stays_a_404() -> None:
    from django.http import Http404, HttpRequest, JsonResponse
    from django.test import Client, override_settings
    from django.urls import path

    from zerotrust.web.django import requires

    @requires("doc", "read", resource_id="id")
    def read(request: HttpRequest, id: str) -> JsonResponse:
        if id == "conflict":
            return JsonResponse(CONFLICT, status=409)
        raise Http404("no such doc")

    with (
        django_urls([path("doc/<str:id>", read)]),
        override_settings(
            MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"],
            ZEROTRUST={"PDP": pdp(), "CONFIG": config()},
        ),
    ):
        client = Client()
        r = client.get("/doc/missing")
        assert r.status_code == 404
        r = client.get("/doc/conflict")
        assert r.status_code == 409 and json.loads(r.content) == MASKED_CONFLICT


@pytest.mark.parametrize("status", [200, 201, 206])
def test_a_non_json_success_from_an_allowed_flask_view_is_still_withheld(status: int) -> None:
    from flask import Flask

    from zerotrust.web.flask import ZeroTrust

    app = Flask(__name__)
    zt = ZeroTrust(app, pdp=pdp(), config=config())

    @app.get("/doc")
    @zt.requires("doc", "read")
    def read() -> Any:
        return "hunter2", status

    r = app.test_client().get("/doc")
    assert r.status_code == 500 and b"hunter2" not in r.data
