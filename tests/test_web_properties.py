"""Property tests of the web enforcement point over whole families of inputs.

* Client addresses: for any peer, forwarded hops and trusted ranges, in any spelling
  (IPv4, IPv4-mapped IPv6 in dotted or hex form, ports, brackets, zones, whitespace),
  the client address is what the canonical forms give, and never a trusted one.
* Enforcement coverage: for any scope type, method, mount point, path and credentials,
  a real Starlette app (ASGI) or Flask app (WSGI) serves a resource only if the PDP
  allowed exactly that resource and action, in a decision it logged for this request.
* Methods: any method not in upper case, which frameworks read differently, is refused
  as unmatched by both adapters and never reaches the app, even with unmatched="pass".
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask import request as flask_request
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strategies import (
    address_spellings,
    addresses,
    asgi_calls,
    range_spellings,
    trusted_ranges,
    unroutable_methods,
    wsgi_calls,
)
from web_helpers import RecordingLog, customer_properties, rogue_key, shipped_pdp, token, web_config

from zerotrust import Decision, Effect
from zerotrust.web import RouteTable, UnsupportedScopeError, client_ip
from zerotrust.web.addresses import trusted_networks
from zerotrust.web.asgi import ZeroTrustMiddleware as AsgiMiddleware
from zerotrust.web.wsgi import DECISION_KEY
from zerotrust.web.wsgi import ZeroTrustMiddleware as WsgiMiddleware

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# --- client addresses ----------------------------------------------------------------------


def _expected(peer: Address, hops: list[Address], trusted: list[Network]) -> str | None:
    """The definition, on canonical values: the first untrusted address from the right."""

    def inside(a: Address) -> bool:
        return any(a.version == n.version and a in n for n in trusted)

    for address in [peer, *reversed(hops)]:
        if not inside(address):
            return str(address)
    return None


@settings(max_examples=300, deadline=None)
@given(
    peer=addresses(),
    hops=st.lists(addresses(), max_size=6),
    trusted=trusted_ranges(),
    data=st.data(),
)
def test_client_ip_is_the_same_for_every_spelling_and_never_trusted(
    peer: Address, hops: list[Address], trusted: list[Network], data: st.DataObject
) -> None:
    spelled_peer = data.draw(address_spellings(peer), label="peer")
    spelled_hops = [data.draw(address_spellings(h), label="hop") for h in hops]
    spelled_ranges = [data.draw(range_spellings(n), label="range") for n in trusted]
    got = client_ip(spelled_peer, ", ".join(spelled_hops), trusted_networks(spelled_ranges))
    canonical = client_ip(
        str(peer), ", ".join(map(str, hops)), trusted_networks([str(n) for n in trusted])
    )
    assert got == canonical == _expected(peer, hops, trusted)
    if got is not None:
        address = ipaddress.ip_address(got)
        assert not any(address.version == n.version and address in n for n in trusted)


# --- every way into the app is decided -------------------------------------------------------

WATCH_AND_PAGES = """
policy: live-view
target: {resources: [customer_record], actions: [watch]}
rules:
  - id: allow-own-department
    effect: allow
    when: "subject.properties.department == resource.properties.owner_dept"
---
policy: public-pages
target: {resources: [page], actions: [read]}
rules:
  - {id: anyone-authenticated, effect: allow}
"""

ROUTES = RouteTable(
    {
        "GET /customers/{id}": ("customer_record", "read"),
        "PATCH /customers/{id}": ("customer_record", "update"),
        "WEBSOCKET /customers/{id}/live": ("customer_record", "watch"),
        "GET /{page:path}": ("page", "read", "page"),
    },
    properties=customer_properties,
)

Served = tuple[str, str, str, Any]  # resource type, resource id, action, decision


class World:
    """One app of each kind behind the middleware, a spy on what they serve, the log."""

    def __init__(self, **config_options: Any) -> None:
        self.log = RecordingLog()
        self.served: list[Served] = []
        pdp = shipped_pdp(self.log, extra=WATCH_AND_PAGES)
        config = web_config(**config_options)
        self.asgi = AsgiMiddleware(self._starlette(), pdp, resolve=ROUTES, config=config)
        self.flask = self._flask()
        self.flask.wsgi_app = WsgiMiddleware(  # type: ignore[method-assign]
            self.flask.wsgi_app, pdp, resolve=ROUTES, config=config
        )
        self.tokens = {
            "none": None,
            "agent": token(),
            "manager": token(sub="u-max", roles=("manager",)),
            "no-mfa": token(amr=("pwd",)),
            "forged": token(key=rogue_key()),
        }

    def reset(self) -> None:
        self.log.entries.clear()
        self.served.clear()

    def _starlette(self) -> Starlette:
        served = self.served

        async def customer(request: Request) -> Response:
            action = "read" if request.method in ("GET", "HEAD") else "update"
            decision = request.scope.get("state", {}).get("zerotrust")
            served.append(("customer_record", request.path_params["id"], action, decision))
            return JSONResponse({"id": request.path_params["id"]})

        async def page(request: Request) -> Response:
            decision = request.scope.get("state", {}).get("zerotrust")
            served.append(("page", request.path_params["page"], "read", decision))
            return JSONResponse({"page": request.path_params["page"]})

        async def live(websocket: WebSocket) -> None:
            decision = websocket.scope.get("state", {}).get("zerotrust")
            served.append(("customer_record", websocket.path_params["id"], "watch", decision))
            await websocket.accept()
            await websocket.close()

        return Starlette(
            routes=[
                Route("/customers/{id}", customer, methods=["GET", "PATCH"]),
                WebSocketRoute("/customers/{id}/live", live),
                Route("/{page:path}", page),
            ]
        )

    def _flask(self) -> Flask:
        app = Flask(__name__)
        served = self.served

        @app.route("/customers/<id>", methods=["GET", "PATCH"])
        def customer(id: str) -> Any:
            action = "read" if flask_request.method in ("GET", "HEAD") else "update"
            served.append(("customer_record", id, action, flask_request.environ.get(DECISION_KEY)))
            return {"id": id}

        @app.get("/<path:page>")
        def page(page: str) -> Any:
            served.append(("page", page, "read", flask_request.environ.get(DECISION_KEY)))
            return {"page": page}

        return app


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    yield World()


@pytest.fixture(scope="module")
def worlds() -> dict[str, World]:
    """One world per ``unmatched`` setting."""
    return {"deny": World(), "pass": World(unmatched="pass")}


def _check_served_only_what_was_allowed(world: World) -> None:
    """Each thing served was allowed, for that resource and action, in a logged decision."""
    logged = {d.decision_id: (d, r) for d, r, _ in world.log.entries}
    assert len(world.served) <= 1 and len(world.log.entries) <= 1
    for kind, rid, action, decision in world.served:
        assert isinstance(decision, Decision), "served without a decision"
        assert decision.decision_id in logged, "served on a decision not made for this request"
        found, request = logged[decision.decision_id]
        assert found.effect is Effect.ALLOW
        assert (request.resource.type, request.resource.id, request.action.name) == (
            kind,
            rid,
            action,
        )


def _http_scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("10.1.2.3", 50000),
        "server": ("testserver", 80),
        "state": {},
    }


async def _drive(app: Any, scope: dict[str, Any]) -> list[dict[str, Any]]:
    kind = scope.get("type")
    incoming: list[dict[str, Any]] = {
        "http": [{"type": "http.request", "body": b"{}", "more_body": False}],
        "websocket": [{"type": "websocket.connect"}],
        "lifespan": [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    }.get(kind if isinstance(kind, str) else "", [])
    gone = {"type": "websocket.disconnect" if kind == "websocket" else "http.disconnect"}
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return incoming.pop(0) if incoming else gone

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(call=asgi_calls())
def test_asgi_app_serves_only_what_the_pdp_allowed(world: World, call: dict[str, Any]) -> None:
    world.reset()
    tok = world.tokens[call["who"]]
    headers = [(b"authorization", f"Bearer {tok}".encode())] if tok else []
    scope: dict[str, Any] = {
        "type": call["type"],
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "scheme": "ws" if call["type"] == "websocket" else "http",
        "path": call["path"],
        "raw_path": call["path"].encode(),
        "root_path": call["root_path"],
        "query_string": b"",
        "headers": headers,
        "client": ("10.1.2.3", 50000),
        "server": ("testserver", 80),
        "state": {},
    }
    if call["type"] == "http":
        scope["method"] = call["method"]
    if call["type"] == "websocket":
        scope["subprotocols"] = []
        scope["extensions"] = {"websocket.http.response": {}}
    if call["type"] not in ("http", "websocket", "lifespan"):
        with pytest.raises(UnsupportedScopeError):
            asyncio.run(_drive(world.asgi, scope))
        assert world.served == [] and world.log.entries == []
        return
    sent = asyncio.run(_drive(world.asgi, scope))
    if call["type"] == "lifespan":
        assert world.log.entries == [] and world.served == []
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]
        return
    assert len(world.log.entries) == 1, "every connection is in the decision log"
    _check_served_only_what_was_allowed(world)
    if call["who"] in ("none", "forged"):
        assert world.served == []


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(call=wsgi_calls())
def test_wsgi_app_serves_only_what_the_pdp_allowed(world: World, call: dict[str, Any]) -> None:
    world.reset()
    tok = world.tokens[call["who"]]
    client = world.flask.test_client()
    client.open(
        "/",
        headers={"authorization": f"Bearer {tok}"} if tok else {},
        environ_overrides={
            "REQUEST_METHOD": call["method"],
            "SCRIPT_NAME": call["script_name"],
            "PATH_INFO": call["path_info"],
            "REMOTE_ADDR": "10.1.2.3",
        },
    )
    assert len(world.log.entries) == 1, "every request is in the decision log"
    _check_served_only_what_was_allowed(world)
    if call["who"] in ("none", "forged"):
        assert world.served == []


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    method=unroutable_methods(),
    unmatched=st.sampled_from(["deny", "pass"]),
    path=st.sampled_from(["/customers/c-1001", "/customers/c-5150", "/about", "/"]),
    who=st.sampled_from(["none", "agent", "manager"]),
)
def test_method_not_in_upper_case_is_refused_and_never_served(
    worlds: dict[str, World], method: str, unmatched: str, path: str, who: str
) -> None:
    # Starlette routes `get` to no handler while Flask serves it as GET: each adapter
    # refuses it as unmatched, whatever the route table and unmatched= say.
    world = worlds[unmatched]
    tok = world.tokens[who]
    auth = {"authorization": f"Bearer {tok}"} if tok else {}

    def refused_as_unmatched(status: int) -> None:
        # (a missing token is answered first, with its challenge)
        assert status == (401 if tok is None else 403) and world.served == []
        [(_, request, extra)] = world.log.entries
        assert extra["enforcement"] == ("missing_token" if tok is None else "unmatched_route")
        assert request.resource.type == "zerotrust:unmatched_route"
        assert request.action.name == f"http:{method}"
        world.reset()

    world.reset()
    headers = [(k.encode(), v.encode()) for k, v in auth.items()]
    sent = asyncio.run(_drive(world.asgi, _http_scope(method, path, headers)))
    assert sent[0]["type"] == "http.response.start"
    refused_as_unmatched(sent[0]["status"])
    response = world.flask.test_client().open(
        path, headers=auth, environ_overrides={"REQUEST_METHOD": method}
    )
    refused_as_unmatched(response.status_code)
