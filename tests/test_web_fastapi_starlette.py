"""The Starlette pieces: ``zt.guard`` on plain endpoints, ``request.user`` from the token."""

from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket
from web_helpers import CUSTOMERS, bearer, rogue_key, shipped_pdp, token, web_config

from zerotrust.web.asgi import decision_of
from zerotrust.web.errors import WebConfigError
from zerotrust.web.fastapi import ZeroTrust
from zerotrust.web.starlette import VerifiedSubject, ZeroTrustBackend


def attributes(id: str) -> dict[str, Any] | None:
    record = CUSTOMERS.get(id)
    return record and {"owner_dept": record["owner_dept"], "sensitivity": record["sensitivity"]}


def build() -> Starlette:
    zt = ZeroTrust(
        shipped_pdp(), config=web_config(websocket_handled_obligations={"mask", "tokenize"})
    )
    read = zt.guard("customer_record", "read", resource_id="id", properties=attributes)

    @read
    async def customer(request: Request) -> Response:
        user = request.user
        assert isinstance(user, VerifiedSubject) and user.identity == "u-anna"
        assert "authenticated" in request.auth.scopes
        body = {
            **CUSTOMERS[request.path_params["id"]],
            "decision": decision_of(request).decision_id,
        }
        return JSONResponse(body)

    @read
    def customer_sync(request: Request) -> Response:
        return JSONResponse(CUSTOMERS[request.path_params["id"]])

    @requires("authenticated")
    async def me(request: Request) -> Response:
        return JSONResponse({"id": request.user.identity, "name": request.user.display_name})

    @read
    async def live(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_json({"id": websocket.path_params["id"]})
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/customers/{id}", customer),
            Route("/sync/customers/{id}", customer_sync),
            Route("/me", me),
            WebSocketRoute("/customers/{id}/live", live),
        ],
        middleware=[Middleware(AuthenticationMiddleware, backend=ZeroTrustBackend(zt))],
    )
    zt.install(app)
    return app


@pytest.fixture
def client() -> TestClient:
    return TestClient(build())


def test_guard_allows_with_masks_and_sets_request_user(client: TestClient) -> None:
    for path in ("/customers/c-1001", "/sync/customers/c-1001"):
        r = client.get(path, headers=bearer())
        assert r.status_code == 200, r.text
        assert r.json()["card_number"] == "****"


def test_guard_refuses_like_the_middleware(client: TestClient) -> None:
    r = client.get("/customers/c-5150", headers=bearer())
    assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
    r = client.get("/customers/c-1002", headers=bearer(amr=("pwd",)))
    assert (
        r.status_code == 401 and "insufficient_user_authentication" in r.headers["www-authenticate"]
    )
    assert client.get("/customers/c-1001").status_code == 401
    forged = client.get("/customers/c-1001", headers=bearer(token(key=rogue_key())))
    assert forged.status_code == 401 and "invalid_token" in forged.headers["www-authenticate"]


def test_backend_gives_starlette_requires_the_verified_subject(client: TestClient) -> None:
    assert client.get("/me", headers=bearer()).json() == {"id": "u-anna", "name": "u-anna"}
    assert client.get("/me").status_code == 403  # Starlette's own @requires answer
    assert client.get("/me", headers=bearer(token(key=rogue_key()))).status_code == 403


def test_guarded_websocket(client: TestClient) -> None:
    with client.websocket_connect("/customers/c-1001/live", headers=bearer()) as ws:
        assert ws.receive_json() == {"id": "c-1001"}
    with pytest.raises(WebSocketDenialResponse) as refused:
        client.websocket_connect("/customers/c-5150/live", headers=bearer()).__enter__()
    assert refused.value.status_code == 403


def test_wrong_resource_id_and_backend_argument_are_typed_errors() -> None:
    zt = ZeroTrust(shipped_pdp(), config=web_config())

    async def view(request: Request) -> Response:
        return JSONResponse({})

    app = Starlette(
        routes=[Route("/x/{dept}", zt.guard("customer_record", "read", resource_id="id")(view))]
    )
    with pytest.raises(WebConfigError, match="'id'"):
        zt.install(app)
    with pytest.raises(WebConfigError):
        ZeroTrustBackend(object())  # type: ignore[arg-type]


def test_starlette_zerotrust_needs_no_fastapi_and_require_all_refuses_unguarded_routes() -> None:
    from zerotrust.web import starlette as plain

    zt = plain.ZeroTrust(shipped_pdp(), config=web_config(), require_all=True)

    @zt.guard("customer_record", "read", resource_id="id", properties=attributes)
    async def customer(request: Request) -> Response:
        return JSONResponse(CUSTOMERS[request.path_params["id"]])

    async def open_(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    app = Starlette(
        routes=[
            Route("/customers/{id}", customer),
            Route("/health", open_),
            Mount("/static", app=Starlette(routes=[Route("/a", open_)])),
        ]
    )
    zt.install(app)
    client = TestClient(app)
    r = client.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"
    r = client.get("/health", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "unmatched_route"
    assert client.get("/health").status_code == 401
    assert client.get("/static/a").json() == {"status": "ok"}  # a mounted app: its own
