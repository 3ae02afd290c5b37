"""Review of issue 13's framework integrations: each test is named after an attack."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import Depends, FastAPI, Response
from hypothesis import given, settings
from hypothesis import strategies as st
from web_helpers import CUSTOMERS, RecordingLog, bearer, django_urls, shipped_pdp, web_config

pytest.importorskip("rest_framework")

from django.test.utils import override_settings

from zerotrust import Decision

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": [],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "UNAUTHENTICATED_USER": None,
}


def _viewset_urls() -> list[Any]:
    from django_site.customers.models import Customer
    from django_site.drf_views import CustomerSerializer
    from rest_framework import viewsets
    from rest_framework.decorators import action
    from rest_framework.response import Response
    from rest_framework.routers import SimpleRouter

    from zerotrust.web.drf import ZeroTrustFilter, ZeroTrustPermission

    class Records(viewsets.ReadOnlyModelViewSet):  # type: ignore[misc]
        permission_classes = (ZeroTrustPermission,)
        filter_backends = (ZeroTrustFilter,)
        queryset = Customer.objects.all()
        serializer_class = CustomerSerializer
        zerotrust_resource_type = "customer_record"
        # A viewset action's own entry is more specific than the method's.
        zerotrust_actions = {"GET": "read", "export": "export"}  # noqa: RUF012

        @action(detail=False, methods=["get"])  # type: ignore[misc]
        def export(self, request: Any) -> Response:
            rows = self.filter_queryset(self.get_queryset())
            return Response([{"id": c.pk, "card_number": c.card_number} for c in rows])

    class Twice(Records):
        """A list action that filters twice (a count, then the page): both are decided."""

        zerotrust_actions = {"GET": "read"}  # noqa: RUF012

        @action(detail=False, methods=["get"])  # type: ignore[misc]
        def twice(self, request: Any) -> Response:
            counted = self.filter_queryset(self.get_queryset()).count()
            rows = self.filter_queryset(self.get_queryset())
            return Response({"count": counted, "ids": [c.pk for c in rows]})

    class TwoObjects(viewsets.ViewSet):  # type: ignore[misc]
        """A detail that checks its record, then a related one: both are decided."""

        permission_classes = (ZeroTrustPermission,)
        zerotrust_resource_type = "customer_record"
        zerotrust_action = "read"

        def retrieve(self, request: Any, pk: str) -> Response:
            mine = Customer.objects.get(pk=pk)
            self.check_object_permissions(request, mine)
            other = Customer.objects.get(pk="c-5150")
            self.check_object_permissions(request, other)
            return Response({"mine": mine.pk, "other_card": other.card_number})

    class Typo(viewsets.ReadOnlyModelViewSet):  # type: ignore[misc]
        permission_classes = (ZeroTrustPermission,)
        queryset = Customer.objects.all()
        zerotrust_resource_type = "customer_record"
        zerotrust_action = "read"
        zerotrust_properties = {"owner_dept": "owner_dept", "sensitivity": "sensitivty"}  # noqa: RUF012

        def retrieve(self, request: Any, pk: str) -> Response:
            return Response({"id": self.get_object().pk})

    class OwnLookup(viewsets.ModelViewSet):  # type: ignore[misc]
        """A custom get_object, as apps write for their lookups: it checks nothing."""

        permission_classes = (ZeroTrustPermission,)
        queryset = Customer.objects.all()
        serializer_class = CustomerSerializer
        zerotrust_resource_type = "customer_record"
        zerotrust_actions = {"GET": "read", "PATCH": "update", "PUT": "update", "DELETE": "update"}  # noqa: RUF012

        def get_object(self) -> Any:
            return Customer.objects.get(pk=self.kwargs["pk"])

    router = SimpleRouter()
    router.register("own-lookup", OwnLookup, basename="own-lookup")
    router.register("records", Records, basename="records")
    router.register("twice", Twice, basename="twice")
    router.register("two-objects", TwoObjects, basename="two-objects")
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


class _FlakyPDP:
    """The shipped policies, until ``down``: then no decision (a remote PDP timing out)."""

    def __init__(self, log: RecordingLog) -> None:
        self.inner = shipped_pdp(log)
        self.down_after: int | None = None
        self.calls = 0

    def _check(self) -> None:
        from zerotrust.errors import DecisionUnavailableError

        self.calls += 1
        if self.down_after is not None and self.calls > self.down_after:
            raise DecisionUnavailableError("the remote PDP timed out")

    def evaluate(self, request: Any, **kw: Any) -> Any:
        self._check()
        return self.inner.evaluate(request, **kw)

    async def evaluate_async(self, request: Any, **kw: Any) -> Any:
        self._check()
        return self.inner.evaluate(request, **kw)


@pytest.mark.parametrize("down_after", [0, 1])
def test_list_filter_with_remote_pdp_timing_out_is_503_not_a_short_list(down_after: int) -> None:
    log = RecordingLog()
    pdp = _FlakyPDP(log)
    pdp.down_after = down_after
    with django_urls([]):
        urls = _viewset_urls()
        with (
            django_urls(urls),
            override_settings(
                MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"],
                ZEROTRUST={"PDP": pdp, "CONFIG": web_config()},
                REST_FRAMEWORK=REST_FRAMEWORK,
            ),
        ):
            from rest_framework.test import APIClient

            r = APIClient().get("/records/", headers=bearer())
    assert r.status_code == 503, r.content[:300]
    assert r.json()["code"] == "pdp_unavailable" and r.headers["retry-after"] == "1"


def _browsable_urls() -> list[Any]:
    from django.urls import path
    from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer
    from rest_framework.response import Response
    from rest_framework.views import APIView
    from web_helpers import CUSTOMERS

    from zerotrust.web.drf import ZeroTrustPermission

    class Detail(APIView):  # docs/integration.md's DRF example, with DRF's default renderers
        permission_classes = (ZeroTrustPermission,)
        renderer_classes = (JSONRenderer, BrowsableAPIRenderer)
        zerotrust_resource_type = "customer_record"
        zerotrust_actions = {"GET": "read", "PUT": "update"}  # noqa: RUF012
        zerotrust_resource_id_kwarg = "id"
        zerotrust_properties = {"owner_dept": "owner_dept", "sensitivity": "sensitivity"}  # noqa: RUF012

        def get(self, request: Any, id: str) -> Response:
            record = CUSTOMERS[id]
            self.check_object_permissions(request, record)
            return Response(record)

        def put(self, request: Any, id: str) -> Response:
            return Response(status=204)

    return [path("api/customers/<str:id>", Detail.as_view())]


TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
    }
]


@pytest.mark.parametrize(("roles", "status"), [(("manager",), 200), (("agent",), 500)])
def test_browsable_api_form_probes_do_not_rearm_the_object_check(
    roles: tuple[str, ...], status: int
) -> None:
    """?format=api: DRF's renderer re-runs the permissions for its PUT form (a clone of
    the request); that probe must not leave a decision owed that was already made."""
    log = RecordingLog()
    with django_urls([]):
        urls = _browsable_urls()
        with (
            django_urls(urls),
            override_settings(
                MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"],
                ZEROTRUST={"PDP": shipped_pdp(log), "CONFIG": web_config()},
                REST_FRAMEWORK=REST_FRAMEWORK,
                TEMPLATES=TEMPLATES,
            ),
        ):
            from rest_framework.test import APIClient

            client = APIClient()
            client.raise_request_exception = False
            r = client.get("/api/customers/c-1001?format=api", headers=bearer(roles=roles))
    assert r.status_code == status, r.content[-600:]
    if status == 500:  # masking obligations on HTML: withheld, never unmasked
        assert r.json()["code"] == "obligation_failed"
        assert b"4111" not in r.content
    assert [req.action.name for _, req, _ in log.entries] == ["read"]


def test_lowercase_method_is_decided_as_the_method_flask_serves() -> None:
    """Werkzeug serves a "delete" as DELETE: the policies must see DELETE, else a rule on
    context.method == "DELETE" is skipped for the very request it was written for."""
    from flask import Flask

    from zerotrust.web.flask import ZeroTrust

    log = RecordingLog()
    app = Flask(__name__)
    zt = ZeroTrust(app, pdp=shipped_pdp(log), config=web_config())

    @app.route("/customers/<id>", methods=["DELETE"])
    @zt.requires("customer_record", "update", resource_id="id")
    def remove(id: str) -> Any:
        return {"removed": id}

    app.test_client().open(
        "/customers/c-1001",
        method="DELETE",
        headers=bearer(),
        environ_overrides={"REQUEST_METHOD": "delete"},
    )
    _, req, extra = log.last
    assert req.context["method"] == "DELETE" and extra["http"]["method"] == "DELETE"


_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


@given(
    st.sampled_from(_METHODS).flatmap(
        lambda m: st.tuples(*[st.sampled_from([c.lower(), c]) for c in m]).map("".join)
    )
)
@settings(max_examples=40, deadline=None)
def test_any_method_casing_is_decided_as_django_serves_it(raw: str) -> None:
    from django.test import RequestFactory

    from zerotrust.web._pep import Gate
    from zerotrust.web.django import decide
    from zerotrust.web.http import Target

    log = RecordingLog()
    with django_urls([]):
        request = RequestFactory().generic(raw, "/x", headers=bearer())
        request.META["REQUEST_METHOD"] = raw
        gate = Gate(shipped_pdp(log), lambda http: None, web_config())
        decide(gate, request, Target("customer_record", "read", "c-1001", {}, {}, "GET /x"))
    _, req, _ = log.last
    assert req.context["method"] == raw.upper() == request.method


@pytest.mark.parametrize("method", ["PATCH", "PUT", "DELETE"])
def test_write_through_an_overridden_get_object_is_decided_before_it_happens(
    drf_client: tuple[Any, RecordingLog], method: str
) -> None:
    """DRF's update/destroy load the object with get_object(); one the app overrides may
    never check object permissions, so the write would happen before the withheld answer."""
    client, log = drf_client
    from django_site.customers.models import Customer

    before = Customer.objects.get(pk="c-5150")
    client.raise_request_exception = False
    data = {
        **{
            f: getattr(before, f)
            for f in ("id", "email", "card_number", "ssn", "owner_dept", "sensitivity")
        },
        "name": "pwned",
    }
    try:
        r = client.generic(
            method, "/own-lookup/c-5150/", json.dumps(data), "application/json", headers=bearer()
        )
        after = Customer.objects.filter(pk="c-5150").first()
        assert r.status_code == 403, r.content[:300]
        assert after is not None and after.name == before.name
        _, req, _ = log.last
        assert req.action.name == "update" and req.resource.id == "c-5150"
    finally:
        before.save()


def _gateway_identity(http: Any) -> dict[str, Any]:
    """A gateway that authenticated the user puts who in X-User (identify=, not a JWT)."""
    from zerotrust.errors import IdentityError

    user = http.header("x-user")
    if user is None:
        raise IdentityError("no X-User from the gateway", code="missing_token")
    roles = ["manager"] if user == "boss" else ["agent"]
    return {
        "type": "user",
        "id": user,
        "properties": {"roles": roles, "department": "support", "amr": ["pwd", "mfa"]},
    }


@pytest.mark.parametrize("identity", ["bearer", "gateway"])
def test_per_site_cache_does_not_serve_an_allowed_response_undecided(identity: str) -> None:
    """Django's per-site cache keys on the URL (and, from Django 5, an Authorization
    header): an allowed response it stored (a manager's, unmasked) was served to anyone
    by FetchFromCacheMiddleware before process_view could decide: with identify= (a
    gateway's header) on any Django, with bearer tokens on Django 4.2."""
    from django.test import Client

    log = RecordingLog()
    config = (
        web_config() if identity == "bearer" else web_config(jwt=None, identify=_gateway_identity)
    )

    def who(name: str | None, roles: tuple[str, ...]) -> dict[str, str]:
        if name is None:
            return {}
        return bearer(roles=roles) if identity == "bearer" else {"x-user": name}

    with (
        django_urls([]),
        override_settings(
            ROOT_URLCONF="django_site.urls",
            MIDDLEWARE=[
                "django.middleware.cache.UpdateCacheMiddleware",
                "zerotrust.web.django.ZeroTrustMiddleware",
                "django.middleware.cache.FetchFromCacheMiddleware",
            ],
            CACHES={
                "default": {
                    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                    "LOCATION": f"review13b-{identity}",
                }
            },
            CACHE_MIDDLEWARE_SECONDS=60,
            ZEROTRUST={"PDP": shipped_pdp(log), "CONFIG": config},
        ),
    ):
        client = Client()
        first = client.get("/customers/c-1001", headers=who("boss", ("manager",)))
        assert first.status_code == 200 and b"4111" in first.content
        assert "private" in first["Cache-Control"]
        second = client.get("/customers/c-1001")
        third = client.get("/customers/c-1001", headers=who("anna", ("agent",)))
    assert second.status_code == 401 and b"4111" not in second.content
    assert third.status_code == 200 and b"4111" not in third.content


def test_flask_allowed_response_is_private_to_its_subject() -> None:
    """A proxy cache keyed without the identity (identify= from a gateway header or a
    cookie) must not replay an allowed response to a caller nothing was decided for."""
    from flask import Flask

    from zerotrust.web.flask import ZeroTrust

    app = Flask(__name__)
    zt = ZeroTrust(app, pdp=shipped_pdp(), config=web_config(jwt=None, identify=_gateway_identity))

    @app.get("/customers/<id>")
    @zt.requires(
        "customer_record",
        "read",
        resource_id="id",
        properties={"owner_dept": "support", "sensitivity": 2},
    )
    def read(id: str) -> Any:
        response = app.make_response({"id": id})
        response.cache_control.public = True  # the app's own header is overruled
        response.cache_control.max_age = 600
        return response

    @app.get("/health")
    def health() -> Any:
        return {"ok": True}

    client = app.test_client()
    r = client.get("/customers/c-1001", headers={"x-user": "boss"})
    assert r.status_code == 200
    assert r.cache_control.private and not r.cache_control.public
    assert not client.get("/health").cache_control.private  # undeclared: untouched


def test_fastapi_allowed_response_is_private_to_its_subject() -> None:
    from starlette.testclient import TestClient

    from zerotrust.web.fastapi import ZeroTrust

    app = FastAPI()
    zt = ZeroTrust(shipped_pdp(), config=web_config(jwt=None, identify=_gateway_identity))
    read = zt.requires(
        "customer_record",
        "read",
        resource_id="id",
        properties={"owner_dept": "support", "sensitivity": 2},
    )

    @app.get("/customers/{id}")
    def customer(id: str, response: Response, d: Decision = Depends(read)) -> Any:  # noqa: B008
        response.headers["cache-control"] = "public, max-age=600"
        return {"id": id, "card_number": "4111111111111111"}

    @app.get("/health")
    def health() -> Any:
        return {"ok": True}

    zt.install(app)
    with TestClient(app) as client:
        r = client.get("/customers/c-1001", headers={"x-user": "anna"})
        assert r.status_code == 200 and "4111" not in r.text, r.text
        directives = [d.strip() for d in r.headers["cache-control"].split(",")]
        assert "private" in directives and "public" not in directives
        assert "max-age=600" in directives
        assert "cache-control" not in client.get("/health").headers


def test_flask_x_sendfile_json_under_a_mask_is_withheld() -> None:
    """USE_X_SENDFILE: send_file answers an empty body and X-Sendfile; nginx/Apache then
    send the file itself, card numbers and all, past the mask."""
    import pathlib
    import tempfile

    from flask import Flask, send_file

    from zerotrust.web.flask import ZeroTrust

    log = RecordingLog()
    with tempfile.TemporaryDirectory() as tmp:
        record = pathlib.Path(tmp) / "c-1001.json"
        record.write_text('{"id": "c-1001", "card_number": "4111111111111111"}')
        app = Flask(__name__)
        app.config["USE_X_SENDFILE"] = True
        zt = ZeroTrust(app, pdp=shipped_pdp(log), config=web_config())

        @app.get("/customers/<id>")
        @zt.requires(
            "customer_record",
            "read",
            resource_id="id",
            properties={"owner_dept": "support", "sensitivity": 2},
        )
        def read(id: str) -> Any:
            return send_file(record, mimetype="application/json")

        r = app.test_client().get("/customers/c-1001", headers=bearer())
    assert r.status_code == 500 and r.json["code"] == "obligation_failed"
    assert "x-sendfile" not in r.headers


@pytest.mark.parametrize("header", ["X-Accel-Redirect", "X-Sendfile"])
def test_django_x_accel_redirect_json_under_a_mask_is_withheld(header: str) -> None:
    from django.http import HttpResponse
    from django.test import Client
    from django.urls import path

    from zerotrust.web.django import requires

    @requires(
        "customer_record",
        "read",
        resource_id="id",
        properties={"owner_dept": "support", "sensitivity": 2},
    )
    def read(request: Any, id: str) -> Any:
        response = HttpResponse(content_type="application/json")
        response[header] = f"/protected/{id}.json"
        return response

    log = RecordingLog()
    with (
        django_urls([path("customers/<str:id>", read)]),
        override_settings(
            MIDDLEWARE=["zerotrust.web.django.ZeroTrustMiddleware"],
            ZEROTRUST={"PDP": shipped_pdp(log), "CONFIG": web_config()},
        ),
    ):
        r = Client().get("/customers/c-1001", headers=bearer())
    assert r.status_code == 500 and r.json()["code"] == "obligation_failed"
    assert header.lower() not in {k.lower() for k in r.headers}


@given(
    st.sampled_from(["x-sendfile", "x-accel-redirect", "x-lighttpd-send-file"]).flatmap(
        lambda h: st.tuples(*[st.sampled_from([c.lower(), c.upper()]) for c in h]).map("".join)
    ),
    st.lists(st.sampled_from(["content-type", "x-request-id", "x-accel-buffering"]), max_size=3),
)
def test_any_spelling_of_a_body_delegating_header_withholds(name: str, others: list[str]) -> None:
    from zerotrust.web._pep import delegated_body

    plain = [(o, "v") for o in others]
    assert delegated_body(plain) is None
    assert delegated_body([*plain, (name, "/file.json")]) is not None


def test_a_list_filtered_twice_is_decided_both_times(
    drf_client: tuple[Any, RecordingLog],
) -> None:
    client, _ = drf_client
    r = client.get("/twice/twice/", headers=bearer())
    assert r.status_code == 200, r.content[:300]
    assert "c-5150" not in r.json()["ids"] and r.json()["count"] == len(r.json()["ids"])


def test_a_second_object_check_in_one_request_is_decided(
    drf_client: tuple[Any, RecordingLog],
) -> None:
    client, log = drf_client
    client.raise_request_exception = False
    r = client.get("/two-objects/c-1001/", headers=bearer())
    assert r.status_code == 403 and b"5500" not in r.content and b"4111" not in r.content
    assert [req.resource.id for _, req, _ in log.entries] == ["c-1001", "c-5150"]


def test_etag_of_the_unmasked_body_does_not_leave_with_the_masked_one() -> None:
    """ConditionalGetMiddleware listed after zerotrust's hashes the unmasked JSON: its
    ETag (an md5 of the body) let a caller check guesses of the masked SSN offline."""
    import hashlib

    from django.test import Client

    from zerotrust.web.django import requires

    def read(request: Any, id: str) -> Any:
        from django.http import JsonResponse

        return JsonResponse(CUSTOMERS[id])

    from django.urls import path

    view = requires(
        "customer_record",
        "read",
        resource_id="id",
        properties={"owner_dept": "support", "sensitivity": 2},
    )(read)
    with (
        django_urls([path("customers/<str:id>", view)]),
        override_settings(
            MIDDLEWARE=[
                "zerotrust.web.django.ZeroTrustMiddleware",
                "django.middleware.http.ConditionalGetMiddleware",
            ],
            ZEROTRUST={"PDP": shipped_pdp(), "CONFIG": web_config()},
        ),
    ):
        r = Client().get("/customers/c-1001", headers=bearer())
        unmasked = json.dumps(CUSTOMERS["c-1001"]).encode()
        guess = f'"{hashlib.md5(unmasked).hexdigest()}"'
        right_guess = Client().get(
            "/customers/c-1001", headers={**bearer(), "if-none-match": guess}
        )
    assert right_guess.status_code == 200 and b"4111" not in right_guess.content
    assert r.status_code == 200 and b"4111" not in r.content
    assert hashlib.md5(unmasked).hexdigest() not in r.get("ETag", "")
    assert "ETag" not in r


def test_flask_etag_of_the_unmasked_body_is_dropped() -> None:
    from flask import Flask, jsonify

    from zerotrust.web.flask import ZeroTrust

    app = Flask(__name__)
    zt = ZeroTrust(app, pdp=shipped_pdp(), config=web_config())

    @app.get("/customers/<id>")
    @zt.requires(
        "customer_record",
        "read",
        resource_id="id",
        properties={"owner_dept": "support", "sensitivity": 2},
    )
    def read(id: str) -> Any:
        response = jsonify(CUSTOMERS[id])
        response.add_etag()  # werkzeug: the sha1 of the unmasked body
        response.headers["Content-MD5"] = "x"
        return response

    r = app.test_client().get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and b"4111" not in r.data
    assert "ETag" not in r.headers and "Content-MD5" not in r.headers
