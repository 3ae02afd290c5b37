"""@require: the enforcement point for functions, sync and async, inside and outside requests."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient
from web_helpers import TOKENIZER, RecordingLog, bearer, shipped_pdp, web_config

from zerotrust import AccessRequest, Effect
from zerotrust.errors import RequestError, ZeroTrustError
from zerotrust.web import AccessDenied, StepUpRequired, current_request, require
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
    from zerotrust.web.asgi import ZeroTrustMiddleware

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
