"""Every connection is decided: WebSocket handshakes through the ASGI middleware.

Starlette's and FastAPI's real TestClient, and uvicorn on 127.0.0.1 with the
``websockets`` client, with real signed JWTs.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import logging
import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi import WebSocket as FastAPIWebSocket
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocket, WebSocketDisconnect
from web_helpers import (
    CUSTOMERS,
    TOKENIZER,
    RecordingLog,
    bearer,
    customer_properties,
    resolve,
    shipped_pdp,
    token,
    web_config,
)
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from zerotrust import PolicyDecisionPoint
from zerotrust.web import (
    RouteTable,
    UnsupportedScopeError,
    WebConfig,
    apply_obligations,
    parse_challenges,
)
from zerotrust.web.asgi import ZeroTrustMiddleware, access_request_of, decision_of
from zerotrust.web.errors import NoDecisionError

WATCH_POLICY = """
policy: live-view
target: {resources: [customer_record], actions: [watch]}
rules:
  - id: allow-own-department
    effect: allow
    when: "subject.properties.department == resource.properties.owner_dept"
"""

LIVE_ROUTES = RouteTable(
    {
        "GET /customers/{id}": ("customer_record", "read"),
        "WEBSOCKET /customers/{id}/live": ("customer_record", "watch"),
        "WEBSOCKET /customers/{id}/masked": ("customer_record", "read"),
    },
    properties=customer_properties,
)

CALLS: list[str] = []


async def read_customer(request: Request) -> Response:
    CALLS.append(f"http {request.url.path}")
    return JSONResponse(CUSTOMERS[request.path_params["id"]])


async def live(websocket: WebSocket) -> None:
    """Sends the record once, with the decision's obligations applied by the app itself."""
    CALLS.append(f"websocket {websocket.url.path}")
    decision = decision_of(websocket)
    await websocket.accept()
    record = apply_obligations(
        CUSTOMERS[websocket.path_params["id"]], decision, tokenizer=TOKENIZER
    )
    await websocket.send_json(
        {
            "decision": decision.decision_id,
            "subject": access_request_of(websocket).subject.id,
            "record": record,
        }
    )
    await websocket.close()


def live_app(
    config: WebConfig | None = None,
    pdp: PolicyDecisionPoint | None = None,
    routes: Any = LIVE_ROUTES,
) -> Starlette:
    inner = Starlette(
        routes=[
            Route("/customers/{id}", read_customer),
            WebSocketRoute("/customers/{id}", live),
            WebSocketRoute("/customers/{id}/live", live),
            WebSocketRoute("/customers/{id}/masked", live),
        ]
    )
    inner.add_middleware(
        ZeroTrustMiddleware,
        pdp=pdp or shipped_pdp(extra=WATCH_POLICY),
        resolve=routes,
        config=config or web_config(),
    )
    return inner


@pytest.fixture
def log() -> RecordingLog:
    CALLS.clear()
    return RecordingLog()


def _denied(client: TestClient, path: str, **kw: Any) -> WebSocketDenialResponse:
    with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(path, **kw):
        pass  # pragma: no cover - the handshake is refused
    return refused.value


def test_websocket_without_token_is_refused(log: RecordingLog) -> None:
    # The reported input: a GET route and a WebSocket beside it, JWT verifier, no token.
    client = TestClient(live_app(pdp=shipped_pdp(log, extra=WATCH_POLICY), routes=resolve))
    refused = _denied(client, "/customers/c-1001/live")
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == "Bearer"
    assert refused.headers["content-type"] == "application/problem+json"
    body = refused.json()
    assert body["code"] == "missing_token" and "card_number" not in refused.text
    decision, request, extra = log.last
    assert body["decision_id"] == decision.decision_id
    assert request.subject.type == "anonymous" and extra["http"]["websocket"] is True
    # ... and the same on a route the table does match
    refused = _denied(TestClient(live_app()), "/customers/c-1001/live")
    assert refused.status_code == 401
    assert CALLS == []


def test_websocket_with_forged_token_is_refused(log: RecordingLog) -> None:
    client = TestClient(live_app(pdp=shipped_pdp(log, extra=WATCH_POLICY)))
    tok = token()
    refused = _denied(client, "/customers/c-1001/live", headers=bearer(tok[:-4] + "AAAA"))
    assert refused.status_code == 401
    [challenge] = parse_challenges(refused.headers["www-authenticate"])
    assert challenge.params["error"] == "invalid_token"
    assert CALLS == []


def _without_denial_extension(app: Any) -> Any:
    """A server that does not offer ``websocket.http.response`` (as the ASGI spec allows)."""

    async def server_side(scope: dict[str, Any], receive: Any, send: Any) -> None:
        scope = {**scope, "extensions": {}}
        await app(scope, receive, send)

    return server_side


def test_websocket_refusal_without_denial_extension_closes_with_1008(log: RecordingLog) -> None:
    app = live_app(pdp=shipped_pdp(log, extra=WATCH_POLICY))
    client = TestClient(_without_denial_extension(app))
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/customers/c-1001/live"),
    ):
        pass  # pragma: no cover
    assert closed.value.code == 1008
    assert closed.value.reason == f"missing_token (decision {log.last[0].decision_id})"
    with (
        pytest.raises(WebSocketDisconnect) as closed,
        client.websocket_connect("/customers/c-5150/live", headers=bearer()),
    ):
        pass  # pragma: no cover
    assert closed.value.code == 1008 and closed.value.reason.startswith("access_denied")
    assert CALLS == []


def test_websocket_with_valid_token_is_decided_on_its_route(log: RecordingLog) -> None:
    client = TestClient(
        live_app(pdp=shipped_pdp(log, extra=WATCH_POLICY)), client=("10.1.2.3", 50000)
    )
    with client.websocket_connect("/customers/c-1001/live", headers=bearer()) as ws:
        message = ws.receive_json()
    decision, request, extra = log.last
    assert message["decision"] == decision.decision_id and message["subject"] == "u-anna"
    assert message["record"]["card_number"] == "4111111111111111"  # watch has no mask
    assert request.action.name == "watch" and request.resource.id == "c-1001"
    assert request.context["websocket"] is True and request.context["method"] == "GET"
    assert request.context["ip"] == "10.1.2.3"
    assert extra["http"] == {
        "method": "GET",
        "path": "/customers/{id}/live",
        "route": "WEBSOCKET /customers/{id}/live",
        "websocket": True,
    }
    assert CALLS == ["websocket /customers/c-1001/live"]


def test_websocket_to_another_departments_record_is_denied(log: RecordingLog) -> None:
    client = TestClient(live_app(pdp=shipped_pdp(log, extra=WATCH_POLICY)))
    refused = _denied(client, "/customers/c-5150/live", headers=bearer())
    assert refused.status_code == 403 and refused.json()["code"] == "access_denied"
    assert refused.json()["decision_id"] == log.last[0].decision_id
    assert CALLS == []


def test_websocket_step_up_is_an_rfc_9470_challenge() -> None:
    config = web_config(websocket_handled_obligations={"mask"})
    client = TestClient(live_app(config), client=("10.1.2.3", 1))
    refused = _denied(client, "/customers/c-1002/masked", headers=bearer(amr=("pwd",)))
    assert refused.status_code == 401
    [challenge] = parse_challenges(refused.headers["www-authenticate"])
    assert challenge.params["error"] == "insufficient_user_authentication"
    assert challenge.params["acr_values"] == "urn:example:loa:2"
    assert CALLS == []


def test_websocket_does_not_match_get_routes(log: RecordingLog) -> None:
    # Only "GET /customers/{id}" is in the table; the app also serves a WebSocket there.
    client = TestClient(live_app(pdp=shipped_pdp(log), routes=resolve))
    refused = _denied(client, "/customers/c-1001", headers=bearer())
    assert refused.status_code == 403 and refused.json()["code"] == "unmatched_route"
    _, request, extra = log.last
    assert request.resource.type == "zerotrust:unmatched_route"
    assert request.resource.id == "WEBSOCKET /customers/c-1001"
    assert request.action.name == "http:WEBSOCKET"
    assert extra["enforcement"] == "unmatched_route" and "path" not in extra["http"]
    assert CALLS == []


def test_http_request_spelt_websocket_does_not_match_websocket_routes(log: RecordingLog) -> None:
    client = TestClient(live_app(pdp=shipped_pdp(log, extra=WATCH_POLICY)))
    r = client.request("WEBSOCKET", "/customers/c-1001/live", headers=bearer())
    assert r.status_code == 403 and r.json()["code"] == "unmatched_route"
    assert CALLS == []


def test_websocket_with_unhandled_obligations_is_refused(log: RecordingLog) -> None:
    # An agent's read carries a mask; the middleware cannot mask a stream of messages.
    client = TestClient(live_app(pdp=shipped_pdp(log)), client=("10.1.2.3", 1))
    refused = _denied(client, "/customers/c-1001/masked", headers=bearer())
    assert refused.status_code == 403 and refused.json()["code"] == "obligation_unsupported"
    assert log.last[0].effect.value == "allow"  # what the PDP said, refused by the PEP
    assert CALLS == []


def test_websocket_obligations_declared_handled_are_left_to_the_app() -> None:
    config = web_config(websocket_handled_obligations={"mask"})
    client = TestClient(live_app(config), client=("10.1.2.3", 1))
    with client.websocket_connect("/customers/c-1001/masked", headers=bearer()) as ws:
        record = ws.receive_json()["record"]
    assert record["card_number"] == "****" and record["ssn"] == "****"
    # ... while plain HTTP responses are still masked by the middleware itself
    r = client.get("/customers/c-1001", headers=bearer())
    assert r.status_code == 200 and r.json()["card_number"] == "****"


def test_unmatched_websocket_passes_only_when_configured() -> None:
    # unmatched="pass" hands it to the app undecided, which decision_of makes plain
    CALLS.clear()
    client = TestClient(live_app(web_config(unmatched="pass"), routes=resolve))
    with pytest.raises(NoDecisionError), client.websocket_connect("/customers/c-1001/live"):
        pass  # pragma: no cover
    assert CALLS == ["websocket /customers/c-1001/live"]


@pytest.mark.parametrize("scope_type", ["webtransport", "HTTP", "", None, "http.request"])
def test_unknown_scope_type_is_refused_and_the_app_never_called(scope_type: Any) -> None:
    called: list[Any] = []

    async def spy(scope: Any, receive: Any, send: Any) -> None:
        called.append(scope)

    async def receive() -> dict[str, Any]:
        return {"type": "http.disconnect"}

    async def send(message: Any) -> None:
        called.append(message)

    middleware = ZeroTrustMiddleware(spy, shipped_pdp(), resolve=resolve, config=web_config())
    scope: dict[str, Any] = {"path": "/customers/c-1001", "headers": []}
    if scope_type is not None:
        scope["type"] = scope_type
    with pytest.raises(UnsupportedScopeError, match="not decided"):
        asyncio.run(middleware(scope, receive, send))
    assert called == []


def test_lifespan_passes_through() -> None:
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        events.append("startup")
        yield
        events.append("shutdown")

    inner = Starlette(routes=[Route("/customers/{id}", read_customer)], lifespan=lifespan)
    inner.add_middleware(
        ZeroTrustMiddleware, pdp=shipped_pdp(), resolve=resolve, config=web_config()
    )
    with TestClient(inner):
        pass
    assert events == ["startup", "shutdown"]


def fastapi_live(config: WebConfig, log: RecordingLog | None = None) -> FastAPI:
    api = FastAPI()
    api.add_middleware(
        ZeroTrustMiddleware,
        pdp=shipped_pdp(log, extra=WATCH_POLICY),
        resolve=LIVE_ROUTES,
        config=config,
    )

    @api.websocket("/customers/{id}/live")
    async def watch(websocket: FastAPIWebSocket, id: str) -> None:
        CALLS.append(id)
        await websocket.accept()
        await websocket.send_json({**CUSTOMERS[id], "effect": decision_of(websocket).effect.value})
        await websocket.close()

    return api


def test_fastapi_websocket_without_token_is_refused(log: RecordingLog) -> None:
    client = TestClient(fastapi_live(web_config(), log))
    refused = _denied(client, "/customers/c-1001/live")
    assert refused.status_code == 401 and refused.json()["decision_id"] == log.last[0].decision_id
    assert CALLS == []
    with client.websocket_connect("/customers/c-1001/live", headers=bearer()) as ws:
        assert ws.receive_json()["effect"] == "allow"
    assert CALLS == ["c-1001"]


# --- over uvicorn on 127.0.0.1 with a real WebSocket client ------------------------------

# Each of uvicorn's WebSocket protocols (`--ws`); "auto" is websockets-sansio from 0.50 on.
WS_IMPLEMENTATIONS = [
    impl
    if importlib.util.find_spec(module) is not None
    else pytest.param(impl, marks=pytest.mark.skip(reason=f"{module} is not installed"))
    for impl, module in (
        ("websockets", "websockets"),
        ("websockets-sansio", "websockets"),
        ("wsproto", "wsproto"),
    )
]
# uvicorn's legacy `websockets` protocol is deprecated (by uvicorn and by websockets) but
# still selectable with `--ws websockets`; its warnings are raised in the server thread.
_LEGACY_PROTOCOL_WARNINGS = (
    "ignore:websockets.legacy is deprecated:DeprecationWarning",
    "ignore:The `websockets` implementation is deprecated",
    "ignore:remove second argument of ws_handler:DeprecationWarning",
    "ignore:websockets.server.WebSocketServerProtocol is deprecated:DeprecationWarning",
)


def over_every_protocol(test: Any) -> Any:
    """Lets the legacy protocol's deprecation warnings pass (warnings are errors here)."""
    for spec in _LEGACY_PROTOCOL_WARNINGS:
        test = pytest.mark.filterwarnings(spec)(test)
    return test


class ServerLog(logging.Handler):
    """Every record uvicorn's loggers emit while the server runs."""

    NAMES = ("uvicorn.error", "uvicorn.access", "websockets")  # where records are made

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self, level: int = logging.DEBUG) -> list[str]:
        return [
            f"{r.levelname} {r.name}: {r.getMessage()}{' (traceback)' if r.exc_info else ''}"
            for r in self.records
            if r.levelno >= level
        ]


@contextlib.contextmanager
def uvicorn_serving(app: Any, ws: str) -> Iterator[tuple[str, ServerLog]]:
    """``app`` under uvicorn with the ``ws`` protocol on 127.0.0.1; the log is complete on exit.

    uvicorn is told not to configure logging (``log_config=None``), so the handler sees
    its records at INFO and above, as a server run at ``--log-level info`` writes them.
    """
    log = ServerLog()
    saved = {name: logging.getLogger(name).level for name in ServerLog.NAMES}
    for name in ServerLog.NAMES:
        logging.getLogger(name).addHandler(log)
        logging.getLogger(name).setLevel(logging.INFO)
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(app, ws=ws, log_config=None, log_level="info", proxy_headers=False)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        for _ in range(300):
            if server.started or not thread.is_alive():
                break
            threading.Event().wait(0.05)
        assert server.started, f"uvicorn did not start: {log.lines()}"
        yield f"ws://127.0.0.1:{port}", log
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
        for name, level in saved.items():
            logging.getLogger(name).removeHandler(log)
            logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="module", params=WS_IMPLEMENTATIONS)
def live_server(request: pytest.FixtureRequest) -> Iterator[tuple[str, RecordingLog]]:
    log = RecordingLog()
    with uvicorn_serving(fastapi_live(web_config(), log), request.param) as (base, _):
        yield base, log


def _refused(url: str, headers: dict[str, str] | None = None) -> Any:
    """The HTTP response that refused a real client's handshake."""
    with pytest.raises(InvalidStatus) as refused:
        connect(url, additional_headers=headers, open_timeout=10).close()
    return refused.value.response


@over_every_protocol
def test_websocket_over_uvicorn_without_token_is_refused(
    live_server: tuple[str, RecordingLog],
) -> None:
    base, log = live_server
    CALLS.clear()
    response = _refused(f"{base}/customers/c-1001/live")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert log.last[0].decision_id.encode() in response.body
    assert b"4111" not in response.body
    assert CALLS == []


@over_every_protocol
def test_websocket_over_uvicorn_with_valid_token_is_accepted(
    live_server: tuple[str, RecordingLog],
) -> None:
    base, log = live_server
    CALLS.clear()
    with connect(
        f"{base}/customers/c-1001/live", additional_headers=bearer(), open_timeout=10
    ) as ws:
        assert '"effect":"allow"' in str(ws.recv(timeout=10))
    assert log.last[1].context["ip"] == "127.0.0.1" and CALLS == ["c-1001"]


@over_every_protocol
@pytest.mark.parametrize("ws", WS_IMPLEMENTATIONS)
@pytest.mark.parametrize("denial_extension", [True, False], ids=["http-response", "close-1008"])
def test_refused_handshakes_cannot_fill_the_server_error_log(
    ws: str, denial_extension: bool
) -> None:
    # Every kind of refusal, repeated, as an unauthenticated client would send them: each
    # is a refusal, and the server logs it as one INFO line, never an ERROR or a traceback.
    # (uvicorn's websockets-sansio protocol logged "ASGI callable returned without
    # completing handshake." at ERROR for every denial response.)
    log = RecordingLog()
    config = web_config(websocket_handled_obligations={"mask"})
    app = fastapi_live(config, log)
    served = app if denial_extension else _without_denial_extension(app)
    CALLS.clear()
    with uvicorn_serving(served, ws) as (base, server_log):
        live = f"{base}/customers/c-1001/live"
        for _ in range(3):
            refusals = [
                (_refused(live), 401, "missing_token"),
                (_refused(live, bearer(token()[:-4] + "AAAA")), 401, "invalid_token"),
                (_refused(f"{base}/customers/c-5150/live", bearer()), 403, "access_denied"),
                (
                    _refused(f"{base}/customers/c-1002/masked", bearer(amr=("pwd",))),
                    401,
                    "step_up_required",
                ),
                (_refused(f"{base}/customers/c-1001", bearer()), 403, "unmatched_route"),
            ]
            for response, status, code in refusals:
                if denial_extension:
                    assert response.status_code == status
                    assert json.loads(response.body)["code"] == code
                else:  # closed before accept: the server answers 403, nothing more
                    assert response.status_code == 403 and b"decision" not in response.body
        with connect(live, additional_headers=bearer(), open_timeout=10) as accepted:
            assert '"effect":"allow"' in str(accepted.recv(timeout=10))
    assert CALLS == ["c-1001"]  # only the accepted one reached the app
    assert [entry[0].effect.value for entry in log.entries].count("allow") >= 1
    assert server_log.lines(logging.WARNING) == []
    refused_lines = [line for line in server_log.lines() if '"WebSocket /customers/' in line]
    assert len(refused_lines) == 16, server_log.lines()  # 15 refusals and one accept
