"""ASGI middleware (Starlette, FastAPI, any ASGI app): the policy enforcement point.

::

    app.add_middleware(ZeroTrustMiddleware, pdp=pdp, resolve=ROUTES, config=WebConfig(jwt=v))

Every connection is decided: ``http`` and ``websocket`` scopes alike (a WebSocket
from its handshake, before the app can accept it); only ``lifespan`` passes through,
and any other scope type raises :class:`~zerotrust.web.UnsupportedScopeError`
without calling the app. Async all the way: the PDP is asked with
``evaluate_async`` (so an async behaviour store never blocks the loop), and token
verification moves to a worker thread only when it may fetch keys. The decision is
in ``request.state.zerotrust`` (``scope["state"]["zerotrust"]``); :func:`decision_of`
fetches it from a Starlette ``Request`` or ``WebSocket``.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from zerotrust.decision import Decision
from zerotrust.engine import DecisionPoint
from zerotrust.request import AccessRequest
from zerotrust.web._asgi import (
    ASGIApp,
    Receive,
    Rewriter,
    Scope,
    Send,
    http_request,
    judge,
    refuse,
    without_pathsend,
)
from zerotrust.web._pep import (
    CURRENT_REQUEST,
    REQUEST_STATE_KEY,
    STATE_KEY,
    Gate,
    Reply,
)
from zerotrust.web.errors import NoDecisionError, UnsupportedScopeError
from zerotrust.web.http import (
    Resolver,
    WebConfig,
    checked_target,
    routable_method,
)

__all__ = ["ZeroTrustMiddleware", "access_request_of", "decision_of"]


_DECIDED = ("http", "websocket")


class ZeroTrustMiddleware:
    """Asks the PDP about every HTTP request and WebSocket handshake, and enforces the answer.

    ``resolve`` is a route table (``{"GET /customers/{id}": ("customer_record",
    "read"), "WEBSOCKET /customers/{id}/live": ("customer_record", "watch")}``), a
    :class:`~zerotrust.web.RouteTable`, or a function from
    :class:`~zerotrust.web.HttpRequest` to :class:`~zerotrust.web.Target` (may be async).

    A refused WebSocket never reaches the app: the refusal is the same problem+json
    response as for HTTP (with its RFC 6750 / RFC 9470 challenge) where the server
    offers the ASGI ``websocket.http.response`` extension, else a ``websocket.close``
    with code 1008 and the decision id in the reason (sent before accept, which the
    server answers with HTTP 403). An allowed WebSocket whose decision carries
    obligations is refused unless the app declares it carries them out
    (``websocket_handled_obligations``, ``handled_obligations`` or
    ``apply_obligations=False``): messages on a stream cannot be rewritten here.
    """

    def __init__(
        self,
        app: ASGIApp,
        pdp: DecisionPoint,
        *,
        resolve: Mapping[str, Any] | Resolver,
        config: WebConfig,
    ) -> None:
        self.app = app
        self._gate = Gate(pdp, resolve, config)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope.get("type")
        if kind == "lifespan":
            await self.app(scope, receive, send)
            return
        if kind not in _DECIDED:
            raise UnsupportedScopeError(
                f"ASGI scope type {kind!r} is not decided: only 'http' and 'websocket' are, "
                "and 'lifespan' passes through"
            )
        gate = self._gate
        http = http_request(scope)
        routable = routable_method(http.method)
        found = gate.resolve(http) if routable else None
        if inspect.isawaitable(found):
            found = await found
        target = checked_target(found)
        if target is None and routable and gate.config.unmatched == "pass":
            await self.app(scope, receive, send)
            return
        judged = await judge(gate, http, target)
        if isinstance(judged, Reply):
            await refuse(scope, send, judged)
            return
        verdict, prepared = judged
        decision = verdict.decision
        if verdict.reply is not None:
            await refuse(scope, send, verdict.reply)
            return
        state = scope.setdefault("state", {})
        state[STATE_KEY] = decision
        state[REQUEST_STATE_KEY] = prepared.access
        token = CURRENT_REQUEST.set(prepared.access)
        try:
            if verdict.plan is None:
                await self.app(scope, receive, send)
                return
            rewriter = Rewriter(send, verdict.plan, gate, decision)
            await self.app(without_pathsend(scope), receive, rewriter)
            await rewriter.finish()
        finally:
            CURRENT_REQUEST.reset(token)


def decision_of(request: Any) -> Decision:
    """The decision for a Starlette/FastAPI ``Request`` or ``WebSocket`` (or an ASGI scope).

    Raises :class:`NoDecisionError` if no zerotrust middleware decided this request.
    """
    found = _state(request).get(STATE_KEY)
    if not isinstance(found, Decision):
        raise NoDecisionError("no zerotrust decision for this request; is the middleware on?")
    return found


def access_request_of(request: Any) -> AccessRequest:
    """The access request the decision was made on (verified subject, device, context)."""
    found = _state(request).get(REQUEST_STATE_KEY)
    if not isinstance(found, AccessRequest):
        raise NoDecisionError("no zerotrust decision for this request; is the middleware on?")
    return found


def _state(request: Any) -> Mapping[str, Any]:
    scope = request if isinstance(request, Mapping) else getattr(request, "scope", {})
    state = scope.get("state") if isinstance(scope, Mapping) else None
    return state if isinstance(state, Mapping) else {}
