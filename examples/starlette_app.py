"""The customer-records API of fastapi_app.py on plain Starlette (FastAPI not needed).

    uvicorn examples.starlette_app:app --no-proxy-headers   # trusted proxies: demo_setup.py
    TOKEN=$(python -m examples.demo_setup token --roles agent --amr pwd,mfa)
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/customers/c-1001
    curl -H "Authorization: Bearer $TOKEN" localhost:8000/me

Starlette's ``AuthenticationMiddleware`` with zerotrust's ``ZeroTrustBackend`` makes
``request.user`` the subject the token vouches for; ``zt.guard(...)`` on an endpoint
decides the request before it runs. Agents see card numbers and national ID numbers
masked; without MFA a confidential record (c-1002) asks for a step-up (401, RFC 9470);
another department's customer (c-5150) is a 403 problem+json. The WebSocket
``/customers/{id}/live`` is decided on its handshake and masks what it sends itself.
``/health`` is not declared, so it is not guarded. A device attestation goes in
``X-Device-Attestation`` (``python -m examples.demo_setup attest --user u-anna``).
Configuration and the demo keys (generated on first run, demo only): examples/demo_setup.py.
"""

from __future__ import annotations

from typing import Any

import attrs
from starlette.applications import Starlette
from starlette.authentication import requires
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.authentication import AuthenticationMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from examples.demo_setup import CUSTOMERS, build_config, build_pdp
from zerotrust.web import apply_obligations
from zerotrust.web.asgi import decision_of
from zerotrust.web.starlette import ZeroTrust, ZeroTrustBackend

# The live feed applies mask and tokenize to each message it sends (see live()): a
# stream is not one JSON body zerotrust could rewrite, so the app says it does that.
config = attrs.evolve(build_config(), websocket_handled_obligations={"mask", "tokenize"})
zt = ZeroTrust(build_pdp(), config=config)  # debug=None: follows Starlette(debug=...)


def attributes(id: str) -> dict[str, Any] | None:
    """What the policies may see of a record; None: unknown, so the policies refuse."""
    record = CUSTOMERS.get(id)
    return record and {"owner_dept": record["owner_dept"], "sensitivity": record["sensitivity"]}


def department(dept: str) -> dict[str, Any]:
    return {"records": sum(1 for c in CUSTOMERS.values() if c["owner_dept"] == dept)}


def _found(id: str) -> dict[str, Any]:
    record = CUSTOMERS.get(id)
    if record is None:
        raise HTTPException(404, "no such customer")
    return record


@zt.guard("customer_record", "read", resource_id="id", properties=attributes)
async def read_customer(request: Request) -> Response:
    decision = decision_of(request)  # == request.state.zerotrust: the allow
    # request.user is the VerifiedSubject the guard decided for; zerotrust masks this JSON.
    body = {**_found(request.path_params["id"]), "read_by": request.user.identity}
    return JSONResponse(body, headers={"x-decision-id": decision.decision_id})


@zt.guard(
    "customer_record",
    "export",
    resource_id="dept",
    properties=lambda dept: {"owner_dept": dept, "sensitivity": 3},
    context=department,
)
def export_customers(request: Request) -> Response:  # sync: Starlette runs it in a thread
    dept = request.path_params["dept"]
    records = [c for c in CUSTOMERS.values() if c["owner_dept"] == dept]
    return JSONResponse({"department": dept, "records": records})


@zt.guard("customer_record", "read", resource_id="id", properties=attributes)
async def live(websocket: WebSocket) -> None:
    decision = decision_of(websocket)  # the handshake's decision: allow
    await websocket.accept()
    record = _found(websocket.path_params["id"])
    # zerotrust cannot rewrite messages: apply the obligations to each one sent.
    await websocket.send_json(apply_obligations(record, decision, tokenizer=config.tokenizer))
    await websocket.close()


@requires("authenticated")  # Starlette's own check: any verified token, no policy asked
async def me(request: Request) -> Response:
    return JSONResponse({"id": request.user.identity, "device": dict(request.user.device)})


async def health(request: Request) -> Response:  # not declared: zerotrust leaves it alone
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[
        Route("/customers/{id}", read_customer),
        Route("/departments/{dept}/export", export_customers),
        WebSocketRoute("/customers/{id}/live", live),
        Route("/me", me),
        Route("/health", health),
    ],
    middleware=[Middleware(AuthenticationMiddleware, backend=ZeroTrustBackend(zt))],
)
zt.install(app)
