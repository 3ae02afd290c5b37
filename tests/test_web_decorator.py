"""@require: the enforcement point for functions, sync and async, inside and outside requests."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

import pytest
from hypothesis import given, settings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from strategies import require_parts
from web_helpers import (
    TOKENIZER,
    RecordingLog,
    attestation,
    bearer,
    shipped_pdp,
    web_config,
)

from zerotrust import AccessRequest, Effect, PolicyDecisionPoint
from zerotrust.errors import RequestError, ZeroTrustError
from zerotrust.web import AccessDenied, StepUpRequired, current_request, require
from zerotrust.web._pep import HTTP_CONTEXT_KEYS
from zerotrust.web.asgi import ZeroTrustMiddleware, access_request_of
from zerotrust.web.errors import NoDecisionError, WebConfigError

MANAGER = {
    "id": "u-max",
    "properties": {"department": "support", "roles": ["manager"], "amr": ["pwd", "mfa"]},
}
MANAGED = {"managed": True, "compliant": True}
CONTEXT = {"ip": "10.1.2.3", "country": "DE", "records": 2}
RECORDS = [
    {"id": "c-1", "email": "a@example.com", "card_number": "4111111111111111"},
    {"id": "c-2", "email": "b@example.com", "card_number": "5500000000000004"},
]


def export_resource(dept: str) -> dict[str, Any]:
    return {
        "type": "customer_record",
        "id": dept,
        "properties": {"owner_dept": dept, "sensitivity": 3},
    }


def test_sync_function_allowed_with_obligations_applied() -> None:
    log = RecordingLog()

    @require(
        shipped_pdp(log),
        action="export",
        resource=export_resource,
        subject=MANAGER,
        device=MANAGED,
        context=lambda dept, limit: {**CONTEXT, "records": limit},
        tokenizer=TOKENIZER,
    )
    def export(dept: str, limit: int = 2) -> list[dict[str, Any]]:
        return RECORDS[:limit]

    out = export("support")
    assert [r["card_number"] for r in out] == ["****", "****"]
    assert out[0]["email"] == TOKENIZER.token("a@example.com")
    assert export.__name__ == "export"
    where = log.last[2]["function"]
    assert where == f"{__name__}.{export.__qualname__}"


def test_denied_and_step_up_raise_with_the_decision() -> None:
    pdp = shipped_pdp()
    called: list[str] = []

    @require(
        pdp,
        action="export",
        resource=export_resource,
        subject=lambda user: user,
        device=MANAGED,
        context=CONTEXT,
        tokenizer=TOKENIZER,
    )
    def export(dept: str, *, user: dict[str, Any]) -> None:
        called.append(dept)

    with pytest.raises(AccessDenied) as denied:
        export("billing", user=MANAGER)
    assert denied.value.decision.effect is Effect.DENY
    assert isinstance(denied.value, PermissionError) and isinstance(denied.value, ZeroTrustError)
    no_mfa = {**MANAGER, "properties": {**MANAGER["properties"], "amr": ["pwd"]}}
    with pytest.raises(StepUpRequired) as step_up:
        export("support", user=no_mfa)
    assert step_up.value.decision.step_up is not None
    assert step_up.value.decision.step_up.acr_values == ("urn:example:loa:2",)
    assert called == []


def test_unknown_obligation_or_missing_tokenizer_denies() -> None:
    @require(
        shipped_pdp(),
        action="export",
        resource=export_resource,
        subject=MANAGER,
        device=MANAGED,
        context=CONTEXT,
    )
    def export(dept: str) -> None:
        raise AssertionError("must not run")

    with pytest.raises(AccessDenied, match="tokenize"):
        export("support")


def test_async_function() -> None:
    @require(
        shipped_pdp(),
        action="export",
        resource=export_resource,
        subject=MANAGER,
        device=MANAGED,
        context=CONTEXT,
        tokenizer=TOKENIZER,
    )
    async def export(dept: str) -> list[dict[str, Any]]:
        await asyncio.sleep(0)
        return RECORDS

    out = asyncio.run(export("support"))
    assert out[1]["card_number"] == "****"
    with pytest.raises(AccessDenied):
        asyncio.run(export("billing"))


def test_subject_from_the_current_request_under_the_middleware() -> None:
    pdp = shipped_pdp()

    @require(
        pdp,
        action="read",
        resource=lambda cid: {
            "type": "customer_record",
            "id": cid,
            "properties": {"owner_dept": "support", "sensitivity": 2},
        },
    )
    async def load(cid: str) -> dict[str, Any]:
        return {"id": cid, "ssn": "123-45-6789"}

    async def endpoint(request: Request) -> JSONResponse:
        return JSONResponse(await load("c-1"))

    app = Starlette(routes=[Route("/c", endpoint)])
    app.add_middleware(
        ZeroTrustMiddleware, pdp=pdp, resolve=lambda http: None, config=web_config(unmatched="pass")
    )
    # unmatched="pass": the middleware does not decide, so no subject: refused
    with pytest.raises(NoDecisionError):
        TestClient(app).get("/c", headers=bearer())

    from zerotrust.web import Target

    app = Starlette(routes=[Route("/c", endpoint)])
    app.add_middleware(
        ZeroTrustMiddleware,
        pdp=pdp,
        config=web_config(apply_obligations=False),
        resolve=lambda http: Target(
            "customer_record", "read", "c-1", {"owner_dept": "support", "sensitivity": 2}
        ),
    )
    r = TestClient(app, client=("10.1.2.3", 1)).get("/c", headers=bearer())
    assert r.status_code == 200 and r.json()["ssn"] == "****"  # masked by @require itself
    assert current_request() is None


def test_configuration_errors() -> None:
    with pytest.raises(WebConfigError):
        require(shipped_pdp(), action="", resource={"type": "x"})
    with pytest.raises(WebConfigError):
        require(shipped_pdp(), action="read", resource=None)


AGENT = {
    "id": "u-anna",
    "properties": {"department": "support", "roles": ["agent"], "amr": ["pwd", "mfa"]},
}
RECORD = {"id": "c-1001", "card_number": "4111111111111111", "ssn": "123-45-6789"}


def read_resource(cid: str) -> dict[str, Any]:
    return {
        "type": "customer_record",
        "id": cid,
        "properties": {"owner_dept": "support", "sensitivity": 2},
    }


class AsyncLoader:
    """An async callable that is not a coroutine function: ``iscoroutinefunction`` is False."""

    async def __call__(self, cid: str) -> dict[str, Any]:
        return dict(RECORD)


def test_async_callable_object_gets_its_awaited_result_masked() -> None:
    guarded = require(shipped_pdp(), action="read", resource=read_resource, subject=AGENT)(
        AsyncLoader()
    )
    out = asyncio.run(guarded("c-1001"))  # type: ignore[arg-type]
    assert out["card_number"] == "****" and out["ssn"] == "****"


def test_generator_result_with_obligations_is_withheld() -> None:
    @require(shipped_pdp(), action="read", resource=read_resource, subject=AGENT)
    def stream(cid: str) -> Any:
        yield dict(RECORD)

    with pytest.raises(AccessDenied, match="withheld") as denied:
        stream("c-1001")
    assert denied.value.decision.effect is Effect.ALLOW  # what the PDP said; the PEP refused


def test_object_result_with_obligations_is_withheld() -> None:
    class Customer:
        card_number = "4111111111111111"

    @require(shipped_pdp(), action="read", resource=read_resource, subject=AGENT)
    async def load(cid: str) -> Any:
        return {"customer": Customer()}

    with pytest.raises(AccessDenied, match="Customer"):
        asyncio.run(load("c-1001"))


def test_subject_function_returning_none_is_not_the_current_requests_subject() -> None:
    # Inside a request decided for u-max, a subject function that finds nobody must not
    # fall back to u-max: it is a request without a subject, and the function never runs.
    from zerotrust.web._pep import CURRENT_REQUEST

    pdp = shipped_pdp()
    ran: list[str] = []

    @require(pdp, action="read", resource=read_resource, subject=lambda user: user)
    def load(cid: str, user: dict[str, Any] | None = None) -> dict[str, Any]:
        ran.append(cid)
        return RECORD

    manager = pdp.evaluate(
        {"subject": MANAGER, "action": {"name": "read"}, "resource": read_resource("c-1")}
    )
    assert manager.effect is Effect.ALLOW
    token = CURRENT_REQUEST.set(
        AccessRequest.from_mapping(
            {"subject": MANAGER, "action": {"name": "read"}, "resource": read_resource("c-1")}
        )
    )
    try:
        with pytest.raises(RequestError, match="subject"):
            load("c-1001", user=None)
    finally:
        CURRENT_REQUEST.reset(token)
    assert ran == []


# --- what the middleware read from HTTP always wins over the decorated call's arguments --

OFFICE_EXPORT = """
policy: office-export
target: {resources: [doc], actions: [export]}
rules:
  - id: office-only
    effect: allow
    when: "ip_in_cidr(context.ip, '10.0.0.0/8') && device.verified == true"
---
policy: doc-read
target: {resources: [doc], actions: [read]}
rules:
  - {id: anyone, effect: allow}
"""
#: The client behind the trusted proxy 10.0.0.5: outside the office, unverified device.
CLIENT = "203.0.113.9"


class ExportApp:
    """A real Starlette app behind the middleware whose handler calls a decorated
    function with the JSON body as its argument (query filters, a client's device blob)."""

    def __init__(self) -> None:
        self.log = RecordingLog()
        self.ran: list[Any] = []
        self.http_context: dict[str, Any] = {}
        pdp = PolicyDecisionPoint.from_texts({"p.yaml": OFFICE_EXPORT}, decision_log=self.log)

        @require(
            pdp,
            action="export",
            resource={"type": "doc"},
            context=lambda filters: filters.get("context"),
            device=lambda filters: filters.get("device"),
        )
        def export(filters: dict[str, Any]) -> list[str]:
            self.ran.append(filters)
            return ["all", "the", "rows"]

        async def endpoint(request: Request) -> JSONResponse:
            self.http_context = dict(access_request_of(request).context)
            try:
                return JSONResponse({"rows": export(await request.json())})
            except RequestError as exc:
                return JSONResponse({"refused": exc.field}, status_code=400)
            except AccessDenied:
                return JSONResponse({"denied": True}, status_code=403)

        app = Starlette(routes=[Route("/export", endpoint, methods=["POST"])])
        app.add_middleware(
            ZeroTrustMiddleware,
            pdp=pdp,
            resolve={"POST /export": ("doc", "read")},
            config=web_config(trusted_proxies=["10.0.0.5/32"]),
        )
        self.client = TestClient(app, client=("10.0.0.5", 1))

    def exports(self) -> list[AccessRequest]:
        """The requests the decorated function was decided on (the middleware's aside)."""
        return [request for _, request, _ in self.log.entries if request.action.name == "export"]

    def post(self, filters: Any, *, forwarded: str | None = CLIENT, device: bool = False) -> Any:
        headers = {**bearer(), "x-country": "NL", "user-agent": "probe/1"}
        if forwarded is not None:
            headers["x-forwarded-for"] = forwarded
        if device:
            headers["x-device-attestation"] = attestation("u-anna")
        self.ran.clear()
        self.log.entries.clear()
        return self.client.post("/export", json=filters, headers=headers)


@functools.cache
def export_app() -> ExportApp:
    return ExportApp()


def test_require_context_cannot_replace_the_client_ip_the_middleware_read() -> None:
    app = export_app()
    r = app.post({"context": {"ip": "10.1.1.1"}})
    assert r.status_code == 400 and r.json() == {"refused": "context.ip"}
    assert app.ran == [] and app.exports() == []  # refused before deciding or running


def test_require_device_cannot_replace_the_device_the_middleware_verified() -> None:
    app = export_app()
    r = app.post({"device": {"verified": True, "managed": True}})
    assert r.status_code == 400 and r.json() == {"refused": "device"}
    assert app.ran == []


def test_require_context_cannot_set_an_ip_the_middleware_left_unknown() -> None:
    # from the trusted proxy without X-Forwarded-For the client address is unknown:
    # it stays unknown, the caller cannot fill it in
    app = export_app()
    r = app.post({"context": {"ip": "10.1.1.1"}}, forwarded=None)
    assert "ip" not in app.http_context
    assert r.status_code == 400 and r.json() == {"refused": "context.ip"}


@pytest.mark.parametrize("key", ["country", "path", "time", "route", "path_params", "websocket"])
def test_require_context_cannot_replace_any_key_read_from_http(key: str) -> None:
    app = export_app()
    r = app.post({"context": {key: "x"}})
    assert r.status_code == 400 and r.json() == {"refused": f"context.{key}"}


def test_require_context_key_that_is_a_str_subclass_is_still_refused() -> None:
    class Sneaky(str):
        def __hash__(self) -> int:
            return 7

        def __eq__(self, other: object) -> bool:
            return False

    from zerotrust.web._pep import CURRENT_REQUEST

    pdp = PolicyDecisionPoint.from_texts({"p.yaml": OFFICE_EXPORT})

    @require(pdp, action="export", resource={"type": "doc"}, context=lambda c: c)
    def export(c: dict[Any, Any]) -> str:
        return "rows"

    token = CURRENT_REQUEST.set(
        AccessRequest.from_mapping(
            {"subject": {"id": "u"}, "action": {"name": "read"}, "resource": {"type": "doc"}}
        )
    )
    try:
        with pytest.raises(RequestError, match=r"context\.ip"):
            export({Sneaky("ip"): "10.1.1.1"})
    finally:
        CURRENT_REQUEST.reset(token)


@pytest.mark.parametrize("bypass", ["__init__", "dict.__setitem__"])
def test_require_decides_on_the_verified_request_not_its_changed_containers(
    bypass: str,
) -> None:
    """Before: ``req.device.__init__(verified=True)`` changed the read-only view in place,
    and @require, which built its request from those views, allowed the export."""
    from zerotrust.web._pep import CURRENT_REQUEST

    pdp = PolicyDecisionPoint.from_texts({"p.yaml": OFFICE_EXPORT}, behavior=None)
    ran: list[str] = []

    @require(pdp, action="export", resource={"type": "doc"})
    def export() -> str:
        ran.append("export")
        return "rows"

    current = AccessRequest.from_mapping(
        {
            "subject": {"id": "u"},
            "action": {"name": "read"},
            "resource": {"type": "doc"},
            "device": {"verified": False},
            "context": {"ip": CLIENT},
        }
    )
    for view, key, value in (
        (current.device, "verified", True),
        (current.context, "ip", "10.1.1.1"),
    ):
        try:
            if bypass == "__init__":
                view.__init__(**{key: value})  # type: ignore[misc]
            else:
                dict.__setitem__(view, key, value)  # type: ignore[arg-type]
        except TypeError:
            pass  # refused outright: better still
    token = CURRENT_REQUEST.set(current)
    try:
        with pytest.raises(AccessDenied):
            export()
    finally:
        CURRENT_REQUEST.reset(token)
    assert ran == []


def test_require_subject_cannot_replace_the_subject_the_middleware_verified() -> None:
    from zerotrust.web._pep import CURRENT_REQUEST

    pdp = shipped_pdp()
    ran: list[str] = []

    @require(pdp, action="read", resource=read_resource, subject=MANAGER)
    def load(cid: str) -> dict[str, Any]:
        ran.append(cid)
        return RECORD

    token = CURRENT_REQUEST.set(
        AccessRequest.from_mapping(
            {"subject": {"id": "u-eve"}, "action": {"name": "read"}, "resource": {"type": "x"}}
        )
    )
    try:
        with pytest.raises(RequestError, match=r"^subject: "):
            load("c-1")
    finally:
        CURRENT_REQUEST.reset(token)
    assert ran == []


def test_require_context_may_add_keys_the_middleware_does_not_set() -> None:
    app = export_app()
    r = app.post({"context": {"ticket": "T-1"}, "device": None})
    assert r.status_code == 403  # decided on the real client address, outside the office
    (request,) = app.exports()
    assert request.context["ticket"] == "T-1" and request.context["ip"] == CLIENT
    assert request.device["verified"] is False
    # an office client on a verified device is allowed: the request, not the argument
    r = app.post({"context": {"ticket": "T-1"}}, forwarded="10.9.9.9", device=True)
    assert r.status_code == 200 and app.exports()[0].context["ip"] == "10.9.9.9"


def test_http_context_keys_name_every_key_the_middleware_sets() -> None:
    app = export_app()
    app.post({})
    assert set(app.http_context) == HTTP_CONTEXT_KEYS - {"websocket", "path_params"}


@settings(max_examples=60, deadline=None)
@given(parts=require_parts(sorted(HTTP_CONTEXT_KEYS)))
def test_property_require_arguments_never_replace_what_the_middleware_read(
    parts: dict[str, Any],
) -> None:
    app = export_app()
    r = app.post(parts)
    context, device = parts.get("context"), parts.get("device")
    clashes = [k for k in (context or {}) if k in HTTP_CONTEXT_KEYS or k in app.http_context]
    if device is not None:
        assert r.status_code == 400 and r.json() == {"refused": "device"}
    elif clashes:
        assert r.status_code == 400 and r.json() == {"refused": f"context.{clashes[0]}"}
    else:
        assert r.status_code == 403  # never allowed: the real client is outside the office
        (request,) = app.exports()
        assert {k: request.context[k] for k in app.http_context} == app.http_context
        assert {k: request.context[k] for k in context or {}} == (context or {})
        assert request.device["verified"] is False
    if r.status_code == 400:
        assert app.ran == [] and app.exports() == []
