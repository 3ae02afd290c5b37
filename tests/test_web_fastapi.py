"""zerotrust.web.fastapi through FastAPI's TestClient, with real signed JWTs."""

import asyncio
import threading
from pathlib import Path
from typing import Annotated, Any

import anyio
import pytest
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, WebSocket
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from starlette.endpoints import HTTPEndpoint
from starlette.testclient import WebSocketDenialResponse
from test_web_docs import Site
from web_helpers import (
    CUSTOMERS,
    WATERMARK_POLICY,
    RecordingLog,
    assert_invalid_request,
    attestation,
    bearer,
    rogue_key,
    schema_pdp,
    shipped_pdp,
    token,
    web_config,
)

from zerotrust import Decision, PolicyDecisionPoint
from zerotrust.web import AccessDenied, StepUpRequired, WebConfig, parse_challenges, require
from zerotrust.web.asgi import decision_of
from zerotrust.web.errors import WebConfigError
from zerotrust.web.fastapi import Refusal, ZeroTrust

CALLS: list[str] = []


def attributes(customer_id: str) -> dict[str, Any] | None:
    record = CUSTOMERS.get(customer_id)
    return record and {"owner_dept": record["owner_dept"], "sensitivity": record["sensitivity"]}


def build(
    config: WebConfig | None = None,
    pdp: PolicyDecisionPoint | None = None,
    *,
    debug: bool | None = None,
    app_debug: bool = False,
) -> FastAPI:
    pdp = pdp or shipped_pdp()
    zt = ZeroTrust(pdp, config=config or web_config(), debug=debug)
    read = zt.requires("customer_record", "read", resource_id="customer_id", properties=attributes)
    app = FastAPI(debug=app_debug)

    @app.get("/customers/{customer_id}")
    async def read_customer(
        customer_id: str, decision: Annotated[Decision, Depends(read)], request: Request
    ) -> dict[str, Any]:
        CALLS.append(customer_id)
        assert decision_of(request) is decision
        record = CUSTOMERS.get(customer_id)
        if record is None:
            raise HTTPException(404, "no such customer")
        return {**record, "decision_id": decision.decision_id}

    @app.get("/sync/customers/{customer_id}")
    def read_customer_sync(
        customer_id: str, decision: Annotated[Decision, Depends(read)]
    ) -> JSONResponse:
        CALLS.append(customer_id)
        return JSONResponse(CUSTOMERS[customer_id], headers={"x-decision": decision.decision_id})

    @app.patch("/customers/{customer_id}")
    def update_customer(
        customer_id: str,
        decision: Annotated[
            Decision,
            Depends(
                zt.requires(
                    "customer_record", "update", resource_id="customer_id", properties=attributes
                )
            ),
        ],
    ) -> dict[str, Any]:
        CALLS.append(customer_id)
        return CUSTOMERS[customer_id]

    @app.get("/departments/{dept}/export")
    async def export(
        dept: str,
        decision: Annotated[
            Decision,
            Depends(
                zt.requires(
                    "customer_record",
                    "export",
                    resource_id="dept",
                    properties=lambda dept: {"owner_dept": dept, "sensitivity": 3},
                    context={"records": 2},
                )
            ),
        ],
    ) -> dict[str, Any]:
        return {"records": [r for r in CUSTOMERS.values() if r["owner_dept"] == dept]}

    @app.get("/health")
    def health() -> PlainTextResponse:
        return PlainTextResponse("ok")

    @app.websocket("/customers/{customer_id}/live")
    async def live(
        websocket: WebSocket,
        customer_id: str,
        decision: Annotated[
            Decision,
            Depends(
                zt.requires(
                    "customer_record", "read", resource_id="customer_id", properties=attributes
                )
            ),
        ],
    ) -> None:
        await websocket.accept()
        await websocket.send_json({"id": customer_id, "decision": decision.decision_id})
        await websocket.close()

    zt.install(app)
    return app


@pytest.fixture
def client() -> TestClient:
    CALLS.clear()
    return TestClient(build())


def test_allow_masks_fields_and_the_view_gets_the_decision(client: TestClient) -> None:
    r = client.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["card_number"] == "****" and body["ssn"] == "****"
    assert body["name"] == "Ada Berg" and body["decision_id"]
    assert CALLS == ["c-1001"]


def test_sync_endpoint_is_guarded_and_masked(client: TestClient) -> None:
    r = client.get("/sync/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    assert r.headers["x-decision"]
    assert client.get("/sync/customers/c-5150", headers=bearer()).status_code == 403


def test_deny_is_problem_json_with_the_decision_id() -> None:
    log = RecordingLog()
    client = TestClient(build(pdp=shipped_pdp(log)))
    CALLS.clear()
    r = client.get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    assert body["code"] == "access_denied" and body["status"] == 403
    decision, request, extra = log.last
    assert body["decision_id"] == decision.decision_id and "reasons" not in body
    assert request.resource.id == "c-5150"
    assert extra["http"] == {
        "method": "GET",
        "path": "/customers/{customer_id}",
        "route": "GET /customers/{customer_id}",
    }
    assert CALLS == []


def test_step_up_challenge_then_retry_with_mfa(client: TestClient) -> None:
    r = client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
    assert r.status_code == 401
    [challenge] = parse_challenges(r.headers["www-authenticate"])
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert challenge.params["acr_values"] == "urn:example:loa:2"
    assert r.json()["code"] == "step_up_required"
    assert CALLS == []
    again = client.get("/customers/c-1002", headers=bearer(amr=("pwd", "mfa")))
    assert again.status_code == 200 and again.json()["card_number"] == "****"


def test_missing_token_is_a_bearer_challenge(client: TestClient) -> None:
    r = client.get("/customers/c-1001")
    assert r.status_code == 401
    assert r.headers["www-authenticate"].lower().startswith("bearer")
    assert "error=" not in r.headers["www-authenticate"]
    assert r.json()["code"] == "missing_token"


def test_forged_token_is_invalid_token(client: TestClient) -> None:
    r = client.get("/customers/c-1001", headers=bearer(token(key=rogue_key())))
    assert r.status_code == 401
    assert parse_challenges(r.headers["www-authenticate"])[0].params["error"] == "invalid_token"
    assert CALLS == []


def test_undeclared_routes_docs_and_openapi_are_untouched(client: TestClient) -> None:
    assert client.get("/health").text == "ok"
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_openapi_shows_the_bearer_scheme_and_device_header_on_protected_routes(
    client: TestClient,
) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "A JWT from the identity provider: `Authorization: Bearer <token>`",
    }
    read = spec["paths"]["/customers/{customer_id}"]["get"]
    assert read["security"] == [{"bearer": []}]
    assert "x-device-attestation" in [p["name"] for p in read["parameters"]]
    assert "security" not in spec["paths"]["/health"]["get"]


def test_device_attestation_reaches_the_policies() -> None:
    log = RecordingLog()
    client = TestClient(build(pdp=shipped_pdp(log)))
    headers = {**bearer(), "x-device-attestation": attestation("u-anna")}
    assert client.get("/customers/c-1001", headers=headers).status_code == 200
    device = log.last[1].device
    assert device["verified"] is True and device["managed"] is True
    client.get("/customers/c-1001", headers={**bearer(), "x-device-attestation": "forged"})
    assert log.last[1].device["verified"] is False


def test_obligation_the_integration_cannot_apply_is_refused_before_the_view() -> None:
    client = TestClient(build(pdp=shipped_pdp(extra=WATERMARK_POLICY)))
    CALLS.clear()
    r = client.patch("/customers/c-1001", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "obligation_unsupported"
    assert CALLS == []


def test_allowed_error_response_is_still_rewritten_or_passed(client: TestClient) -> None:
    r = client.get("/customers/c-9999", headers=bearer())
    # no attributes for an unknown record: the policies refuse, nothing leaks
    assert r.status_code in (403, 404)


def test_other_path_params_go_to_context_and_a_wrong_resource_id_fails_at_install() -> None:
    log = RecordingLog()
    zt = ZeroTrust(shipped_pdp(log), config=web_config())
    app = FastAPI()

    @app.get("/departments/{dept}/customers/{customer_id}")
    def view(
        d: Annotated[
            Decision, Depends(zt.requires("customer_record", "read", resource_id="customer_id"))
        ],
    ) -> dict[str, Any]:
        return {}

    zt.install(app)
    TestClient(app).get("/departments/support/customers/c-1001", headers=bearer())
    request = log.last[1]
    assert request.resource.id == "c-1001"
    assert request.context["path_params"] == {"dept": "support"}
    assert log.last[2]["http"]["route"] == "GET /departments/{dept}/customers/{customer_id}"

    other = FastAPI()

    @other.get("/x/{dept}")
    def x(
        d: Annotated[Decision, Depends(zt.requires("t", "read", resource_id="customer_id"))],
    ) -> None:
        return None

    with pytest.raises(WebConfigError, match="customer_id"):
        zt.install(other)


def test_export_manager_gets_tokenized_fields() -> None:
    client = TestClient(build())
    headers = {
        **bearer(sub="u-max", roles=("manager",)),
        "x-device-attestation": attestation("u-max"),
    }
    r = client.get("/departments/support/export", headers=headers)
    assert r.status_code == 200, r.text
    records = r.json()["records"]
    assert records and all(x["email"].startswith("tok_") for x in records)


def test_debug_puts_reasons_in_refusals() -> None:
    for app in (build(debug=True), build(app_debug=True)):
        r = TestClient(app).get("/customers/c-5150", headers=bearer())
        assert r.status_code == 403 and r.json()["reasons"]
    r = TestClient(build(app_debug=True, debug=False)).get("/customers/c-5150", headers=bearer())
    assert "reasons" not in r.json()


def test_app_handler_for_refusal_sees_it() -> None:
    app = build()
    seen: list[int] = []
    original = app.exception_handlers[Refusal]

    async def logged(request: Request, exc: Exception) -> Any:
        assert isinstance(exc, Refusal)
        seen.append(exc.status_code)
        return await original(request, exc)

    app.add_exception_handler(Refusal, logged)
    r = TestClient(app).get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403 and seen == [403]


def test_require_inside_a_view_is_answered_not_a_500(client: TestClient) -> None:
    app = FastAPI()
    zt = ZeroTrust(shipped_pdp(), config=web_config())
    pdp = shipped_pdp()

    @require(
        pdp,
        action="read",
        resource={
            "type": "customer_record",
            "id": "c-5150",
            "properties": {"owner_dept": "billing", "sensitivity": 2},
        },
    )
    def load() -> dict[str, Any]:
        return {}

    @app.get("/customers/{customer_id}")
    def view(
        customer_id: str,
        decision: Annotated[
            Decision,
            Depends(
                zt.requires(
                    "customer_record", "read", resource_id="customer_id", properties=attributes
                )
            ),
        ],
    ) -> dict[str, Any]:
        return load()  # decided with the verified subject of this request

    zt.install(app)
    r = TestClient(app).get("/customers/c-1001", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "access_denied"
    assert issubclass(StepUpRequired, AccessDenied)


def test_install_is_required() -> None:
    zt = ZeroTrust(shipped_pdp(), config=web_config())
    app = FastAPI()

    @app.get("/customers/{customer_id}")
    def view(
        customer_id: str,
        decision: Annotated[
            Decision, Depends(zt.requires("customer_record", "read", resource_id="customer_id"))
        ],
    ) -> dict[str, Any]:
        return {}

    with pytest.raises(WebConfigError, match="install"):
        TestClient(app).get("/customers/c-1001", headers=bearer())


def test_bad_configuration_is_a_typed_error() -> None:
    zt = ZeroTrust(shipped_pdp(), config=web_config())
    with pytest.raises(WebConfigError):
        zt.requires("", "read")
    with pytest.raises(WebConfigError):
        zt.requires("t", "read", properties=42)  # type: ignore[arg-type]
    with pytest.raises(WebConfigError):
        ZeroTrust(shipped_pdp(), config={"jwt": None})  # type: ignore[arg-type]


def test_websocket_allowed_and_refused(client: TestClient) -> None:
    config = web_config(websocket_handled_obligations={"mask", "tokenize"})
    ws_client = TestClient(build(config))
    with ws_client.websocket_connect("/customers/c-1001/live", headers=bearer()) as ws:
        assert ws.receive_json()["id"] == "c-1001"
    with pytest.raises(WebSocketDenialResponse) as refused:
        ws_client.websocket_connect("/customers/c-1001/live").__enter__()
    assert refused.value.status_code == 401
    with pytest.raises(WebSocketDenialResponse) as refused:
        ws_client.websocket_connect("/customers/c-5150/live", headers=bearer()).__enter__()
    assert refused.value.status_code == 403
    # obligations the WebSocket handler does not declare: refused, not streamed unmasked
    with pytest.raises(WebSocketDenialResponse) as refused:
        client.websocket_connect("/customers/c-1001/live", headers=bearer()).__enter__()
    assert refused.value.status_code == 403


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(customer=st.sampled_from(sorted(CUSTOMERS)), amr=st.sampled_from([("pwd",), ("pwd", "mfa")]))
def test_never_an_unmasked_card_number(
    client: TestClient, customer: str, amr: tuple[str, ...]
) -> None:
    r = client.get(f"/customers/{customer}", headers=bearer(amr=amr))
    assert CUSTOMERS[customer]["card_number"] not in r.text
    assert r.status_code in (200, 401, 403)


def test_docs_section_runs_as_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = Site(tmp_path, monkeypatch)
    page = site.run("## FastAPI")
    client = TestClient(page["app"])
    r = client.get("/customers/c-1001", headers=site.bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    assert client.get("/customers/c-1001").status_code == 401
    denied = client.get("/customers/c-1001", headers=site.bearer(department="billing"))
    assert denied.status_code == 403 and denied.json()["code"] == "access_denied"
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    export = client.get("/departments/support/export", headers=site.bearer(roles=("manager",)))
    assert export.status_code == 403  # an export asks for a managed device: none here
    assert "4111111111111111" not in export.text

    starlette = TestClient(page["starlette_app"])
    r = starlette.get("/customers/c-1001", headers=site.bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    assert starlette.get("/customers/c-1001").status_code == 401
    with starlette.websocket_connect("/customers/c-1001/live", headers=site.bearer()) as ws:
        assert ws.receive_json()["card_number"] == "****"
    for headers, status in (({}, 401), (site.bearer(department="billing"), 403)):
        with pytest.raises(WebSocketDenialResponse) as refused:
            starlette.websocket_connect("/customers/c-1001/live", headers=headers).__enter__()
        assert refused.value.status_code == status


class Customer(BaseModel):
    id: str
    name: str
    card_number: str


def test_response_model_and_router_dependencies_get_the_obligations() -> None:
    zt = ZeroTrust(shipped_pdp(), config=web_config())
    router = APIRouter(
        dependencies=[
            Depends(
                zt.requires(
                    "customer_record", "read", resource_id="customer_id", properties=attributes
                )
            )
        ]
    )

    @router.get("/customers/{customer_id}", response_model=Customer)
    async def read(customer_id: str) -> Any:
        return CUSTOMERS[customer_id]

    @router.get("/customers/{customer_id}/note")
    def note(customer_id: str) -> PlainTextResponse:
        return PlainTextResponse(CUSTOMERS[customer_id]["card_number"])

    app = FastAPI()
    app.include_router(router, prefix="/api")
    zt.install(app)
    client = TestClient(app)
    r = client.get("/api/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json() == {
        "id": "c-1001",
        "name": "Ada Berg",
        "card_number": "****",
    }
    assert client.get("/api/customers/c-5150", headers=bearer()).status_code == 403
    # a body the obligations cannot be applied to is withheld, never sent unmasked
    withheld = client.get("/api/customers/c-1001/note", headers=bearer())
    assert withheld.status_code == 500 and withheld.json()["code"] == "obligation_failed"
    assert "4111" not in withheld.text


def test_websocket_refused_with_close_1008_without_the_denial_extension() -> None:
    app = build(web_config(websocket_handled_obligations={"mask", "tokenize"}))
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "websocket.connect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def connect(headers: list[tuple[bytes, bytes]]) -> None:
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "path": "/customers/c-5150/live",
            "raw_path": b"/customers/c-5150/live",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"host", b"testserver"), *headers],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "scheme": "ws",
            "subprotocols": [],
            "state": {},
        }
        await app(scope, receive, send)

    auth = [(b"authorization", bearer()["authorization"].encode())]
    anyio.run(connect, auth)
    [close] = sent
    assert close["type"] == "websocket.close" and close["code"] == 1008
    assert close["reason"].startswith("access_denied (decision ")


def test_require_all_refuses_undeclared_routes_but_not_the_docs() -> None:
    log = RecordingLog()
    zt = ZeroTrust(shipped_pdp(log), config=web_config(), require_all=True)
    app = FastAPI()
    ran: list[str] = []

    @app.get("/customers/{customer_id}")
    def read(
        customer_id: str,
        decision: Annotated[
            Decision,
            Depends(
                zt.requires(
                    "customer_record", "read", resource_id="customer_id", properties=attributes
                )
            ),
        ],
    ) -> dict[str, Any]:
        return CUSTOMERS[customer_id]

    @app.get("/forgotten")
    def forgotten() -> dict[str, Any]:
        ran.append("forgotten")
        return {"secret": True}

    @app.websocket("/forgotten-live")
    async def forgotten_live(websocket: WebSocket) -> None:
        ran.append("live")
        await websocket.accept()

    zt.install(app)
    client = TestClient(app)
    r = client.get("/forgotten", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "unmatched_route"
    assert log.last[2]["enforcement"] == "unmatched_route"
    assert client.get("/forgotten").status_code == 401
    with pytest.raises(WebSocketDenialResponse) as refused:
        client.websocket_connect("/forgotten-live", headers=bearer()).__enter__()
    assert refused.value.status_code == 403
    assert ran == []
    assert client.get("/customers/c-1001", headers=bearer()).json()["card_number"] == "****"
    assert client.get("/docs").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/nowhere").status_code == 404


def test_install_after_the_app_started_is_a_typed_error() -> None:
    zt = ZeroTrust(shipped_pdp(), config=web_config())
    app = FastAPI()
    TestClient(app).get("/docs")
    with pytest.raises(WebConfigError, match="first request"):
        zt.install(app)


def _off_the_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def test_sync_lookups_run_in_the_threadpool_async_ones_on_the_loop() -> None:
    threads: dict[str, int] = {}

    def properties(customer_id: str) -> dict[str, Any] | None:  # a database query, say
        assert _off_the_loop()
        threads["properties"] = threading.get_ident()
        return attributes(customer_id)

    def context(request: Request) -> dict[str, Any]:
        assert _off_the_loop()
        threads["context"] = threading.get_ident()
        return {"ticket": request.headers.get("x-ticket")}

    async def async_properties(customer_id: str) -> dict[str, Any] | None:
        threads["async"] = threading.get_ident()
        return attributes(customer_id)

    log = RecordingLog()
    zt = ZeroTrust(shipped_pdp(log), config=web_config())
    app = FastAPI()
    sync_read = zt.requires(
        "customer_record",
        "read",
        resource_id="customer_id",
        properties=properties,
        context=context,
    )
    async_read = zt.requires(
        "customer_record", "read", resource_id="customer_id", properties=async_properties
    )

    @app.get("/customers/{customer_id}")
    async def read(customer_id: str, decision: Annotated[Decision, Depends(sync_read)]) -> Any:
        threads["loop"] = threading.get_ident()
        return CUSTOMERS[customer_id]

    @app.get("/async/customers/{customer_id}")
    async def read_async(
        customer_id: str, decision: Annotated[Decision, Depends(async_read)]
    ) -> Any:
        threads["loop"] = threading.get_ident()
        return CUSTOMERS[customer_id]

    zt.install(app)
    client = TestClient(app)
    r = client.get("/customers/c-1001", headers={**bearer(), "x-ticket": "T-7"})
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    assert threads["properties"] != threads["loop"] and threads["context"] != threads["loop"]
    request = log.last[1]
    assert request.resource.properties["owner_dept"] == "support"
    assert request.context["ticket"] == "T-7"
    assert client.get("/async/customers/c-1001", headers=bearer()).status_code == 200
    assert threads["async"] == threads["loop"]


def test_a_failing_lookup_is_never_an_allow() -> None:
    calls: list[str] = []

    def broken(customer_id: str) -> dict[str, Any]:
        raise ConnectionError("database down")

    async def broken_async(customer_id: str) -> dict[str, Any]:
        raise ConnectionError("database down")

    def not_a_mapping(customer_id: str) -> Any:
        return ["owner_dept", "support"]

    log = RecordingLog()
    zt = ZeroTrust(shipped_pdp(log), config=web_config())
    app = FastAPI()
    for n, (props, ctx) in enumerate(
        [(broken, None), (broken_async, None), (attributes, broken), (not_a_mapping, None)]
    ):
        dep = zt.requires(
            "customer_record", "read", resource_id="customer_id", properties=props, context=ctx
        )

        @app.get(f"/{n}/customers/{{customer_id}}")
        def view(customer_id: str, decision: Annotated[Decision, Depends(dep)]) -> Any:
            calls.append(customer_id)
            return CUSTOMERS[customer_id]

    guarded = zt.guard("customer_record", "read", resource_id="customer_id", properties=broken)

    @guarded
    def plain(request: Request) -> Any:
        calls.append("plain")
        return JSONResponse(CUSTOMERS["c-1001"])

    app.add_route("/plain/customers/{customer_id}", plain)
    zt.install(app)
    client = TestClient(app, raise_server_exceptions=False)
    for path in [f"/{n}/customers/c-1001" for n in range(4)] + ["/plain/customers/c-1001"]:
        r = client.get(path, headers=bearer())
        assert r.status_code == 500, path
        assert "4111111111111111" not in r.text
    assert calls == [] and log.entries == []  # no view ran, nothing was decided


def test_a_lookup_without_a_signature_is_a_typed_error_when_declared() -> None:
    zt = ZeroTrust(shipped_pdp(), config=web_config())
    with pytest.raises(WebConfigError, match="properties"):
        zt.requires("customer_record", "read", properties=dict)


def test_misdeclarations_are_typed_errors_that_name_the_fix() -> None:
    with pytest.raises(WebConfigError, match="PolicyDecisionPoint"):
        ZeroTrust("policies/", config=web_config())  # type: ignore[arg-type]
    zt = ZeroTrust(shipped_pdp(), config=web_config())

    def by_id(id: str) -> dict[str, Any] | None:  # the route calls it customer_id
        return attributes(id)

    misnamed = zt.requires("customer_record", "read", properties=by_id)
    app = FastAPI()

    @app.get("/customers/{customer_id}")
    def read(customer_id: str, decision: Annotated[Decision, Depends(misnamed)]) -> Any:
        return CUSTOMERS[customer_id]

    with pytest.raises(WebConfigError, match=r"properties= takes 'id'.*'customer_id'"):
        zt.install(app)

    uncalled = FastAPI()

    @uncalled.get("/customers/{customer_id}")
    def read_uncalled(customer_id: str, decision: Annotated[Decision, Depends(zt.requires)]) -> Any:
        return CUSTOMERS[customer_id]

    with pytest.raises(WebConfigError, match=r"Depends\(zt.requires\) must be called"):
        zt.install(uncalled)

    twice = FastAPI()
    zt.install(twice)
    with pytest.raises(WebConfigError, match="already"):
        zt.install(twice)

    # a route added after install is checked when it is called, before any decision
    @twice.get("/late/{customer_id}")
    def late(customer_id: str, decision: Annotated[Decision, Depends(misnamed)]) -> Any:
        return CUSTOMERS[customer_id]

    with pytest.raises(WebConfigError, match="takes 'id'"):
        TestClient(twice).get("/late/c-1001", headers=bearer())

    class Endpoint(HTTPEndpoint):
        async def get(self, request: Request) -> Any:
            return JSONResponse({})

    with pytest.raises(WebConfigError, match="class"):
        zt.guard("customer_record", "read")(Endpoint)


FAILURES = st.sampled_from(
    [ConnectionError, TimeoutError, KeyError, ValueError, RuntimeError, PermissionError]
)


@settings(max_examples=30, deadline=None)
@given(
    failure=FAILURES,
    asynchronous=st.booleans(),
    part=st.sampled_from(["properties", "context"]),
    customer=st.sampled_from(sorted(CUSTOMERS)),
)
def test_whatever_a_lookup_raises_the_view_never_runs(
    failure: type[Exception], asynchronous: bool, part: str, customer: str
) -> None:
    ran: list[str] = []

    def broken(customer_id: str) -> dict[str, Any]:
        raise failure("lookup failed")

    async def broken_async(customer_id: str) -> dict[str, Any]:
        raise failure("lookup failed")

    lookup = broken_async if asynchronous else broken
    parts: dict[str, Any] = {"properties": attributes, part: lookup}
    log = RecordingLog()
    zt = ZeroTrust(shipped_pdp(log), config=web_config())
    dep = zt.requires("customer_record", "read", resource_id="customer_id", **parts)
    app = FastAPI()

    @app.get("/customers/{customer_id}")
    async def view(customer_id: str, decision: Annotated[Decision, Depends(dep)]) -> Any:
        ran.append(customer_id)
        return CUSTOMERS[customer_id]

    zt.install(app)
    r = TestClient(app, raise_server_exceptions=False).get(
        f"/customers/{customer}", headers=bearer()
    )
    assert r.status_code == 500 and ran == [] and log.entries == []
    assert CUSTOMERS[customer]["card_number"] not in r.text


def test_a_request_the_pdp_refuses_for_its_attributes_is_a_400() -> None:
    """``schema_validation="enforce"``: the dependency's properties lack the required
    ``region``; refused before the endpoint runs, naming the field."""
    CALLS.clear()
    client = TestClient(build(pdp=schema_pdp("enforce")))
    r = client.get("/customers/c-1001", headers=bearer())
    assert_invalid_request(r.status_code, r.headers["content-type"], r.json())
    assert CALLS == []
