"""Starlette: a route-level guard, and ``request.user`` / ``request.auth`` from the token.

::

    zt = ZeroTrust(pdp, config=config)

    @zt.guard("customer_record", "read", resource_id="id", properties=attributes)
    async def read(request): ...          # runs only on allow; request.state.zerotrust

    app = Starlette(routes=[Route("/customers/{id}", read)],
                    middleware=[Middleware(AuthenticationMiddleware, backend=ZeroTrustBackend(zt))])
    zt.install(app)

Starlette's router is the route table: the route's ``path_params`` give ``resource.id``.
The subject, device and HTTP context are read as the ASGI middleware reads them, by the
same :class:`~zerotrust.web._pep.Gate`. A refusal is raised as :class:`Refusal` (an
``HTTPException``), answered by the handler :meth:`ZeroTrust.install` registers with the
same 401 / 403 problem+json as the middleware; the allowed decision's obligations are
applied to the JSON response by a small ASGI middleware that ``install`` adds.
``zerotrust.web.fastapi`` builds its dependencies on this ``ZeroTrust``.

The backend only says who is calling (as Starlette's ``AuthenticationMiddleware``
expects); whether they may is the guard's decision. A missing or invalid token is an
unauthenticated user there, not an error: the guard answers it with the 401 challenge.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ClassVar

import attrs
from starlette.applications import Starlette
from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Route, WebSocketRoute

from zerotrust.decision import Decision
from zerotrust.engine import DecisionPoint
from zerotrust.errors import ZeroTrustError
from zerotrust.web._asgi import (
    ASGIApp,
    Receive,
    Rewriter,
    Scope,
    Send,
    http_request,
    identify,
    judge,
    refuse,
    settle_denial,
    without_pathsend,
)
from zerotrust.web._parts import is_async, missing_arguments, required_arguments
from zerotrust.web._pep import (
    CURRENT_REQUEST,
    REQUEST_STATE_KEY,
    STATE_KEY,
    Gate,
    Reply,
    request_part,
)
from zerotrust.web.errors import AccessDenied, WebConfigError
from zerotrust.web.http import Target, WebConfig
from zerotrust.web.obligations import ObligationPlan

__all__ = ["Refusal", "Requirement", "VerifiedSubject", "ZeroTrust", "ZeroTrustBackend"]

_SLOT = "zerotrust.guard"
Part = Mapping[str, Any] | Callable[..., Any] | None


class Refusal(ZeroTrustError, HTTPException):
    """A request the PDP (or the gate) refused; ``reply`` is the complete answer.

    Raised by a guard (or a FastAPI dependency) and answered by the handler that
    :meth:`ZeroTrust.install` registers (an app may register its own for this class to
    log or decorate it; it should still send ``reply``). An ``HTTPException``, so that
    even an app without that handler answers with the refusal's status and challenge,
    never runs the view. ``decision`` is ``None`` only for a request that could not be
    turned into an access request.
    """

    def __init__(self, reply: Reply, decision: Decision | None) -> None:
        challenge = {k: v for k, v in reply.headers if k == "www-authenticate"}
        HTTPException.__init__(self, reply.status, reply.code, challenge or None)
        self.reply = reply
        self.decision = decision


#: A request part's lookup, made once per declaration: path parameters and the
#: connection in, the mapping (or ``None``) out.
Lookup = Callable[[Mapping[str, Any], HTTPConnection], Awaitable[Mapping[str, Any] | None]]


@attrs.frozen
class Requirement:
    """What a route declares: the resource type, the action and where the id comes from."""

    resource_type: str
    action: str
    resource_id: str | None = None
    properties: Part = None
    context: Part = None
    _lookups: tuple[Lookup, Lookup] = attrs.field(init=False, eq=False, repr=False)
    #: ``(part, the names it must be called with)``: checked against each route's.
    needs: tuple[tuple[str, frozenset[str]], ...] = attrs.field(init=False, eq=False)

    def __attrs_post_init__(self) -> None:
        for name, value in (("resource_type", self.resource_type), ("action", self.action)):
            if not isinstance(value, str) or not value:
                raise WebConfigError(f"requires: {name} must be a non-empty string")
        rid = self.resource_id
        if rid is not None and (not isinstance(rid, str) or not rid):
            raise WebConfigError("requires: resource_id names a path parameter")
        for name, part in (("properties", self.properties), ("context", self.context)):
            if part is not None and not isinstance(part, Mapping) and not callable(part):
                raise WebConfigError(f"requires: {name} must be a mapping or a function")
        # Signatures are read here, once, not on every request.
        parts = (("properties", self.properties), ("context", self.context))
        needs = tuple((what, required_arguments(part, f"requires: {what}")) for what, part in parts)
        lookups = (_lookup(self.properties, "properties"), _lookup(self.context, "context"))
        object.__setattr__(self, "needs", needs)
        object.__setattr__(self, "_lookups", lookups)

    async def lookup(
        self, params: Mapping[str, Any], connection: HTTPConnection
    ) -> tuple[Mapping[str, Any] | None, Mapping[str, Any] | None]:
        """``resource.properties`` and the extra context for this request."""
        route = connection.scope.get("route")
        template = getattr(route, "path_format", None) or "(this route)"
        missing_arguments(self.needs, ["request", *params], template)  # unchecked by install
        properties, context = self._lookups
        return await properties(params, connection), await context(params, connection)


class _Slot:
    """Per request, what the dependencies decided that the response middleware must do."""

    def __init__(self, send: Send) -> None:
        self.rewrites: list[tuple[ObligationPlan, Gate, Decision]] = []
        self.send = send  # the server's own, before Starlette's handlers wrap it
        self.allowed = False  # a guard allowed: the response is for that subject only


def _no_routes(http: Any) -> None:
    return None  # the framework's router resolves; the gate never does here


class ZeroTrust:
    """The enforcement point for one Starlette app: the guard, handlers, obligations.

    ``debug`` puts the decision's reasons (the matched rules) into refusals; ``None``
    follows the app's own ``debug``. Never turn it on where clients are untrusted.
    ``require_all`` refuses (403 ``unmatched_route``, logged like any decision) every
    route of the app that declares no requirement; mounted apps stay reachable.
    """

    #: What a refusal is raised as (FastAPI's is also FastAPI's ``HTTPException``).
    refusal: ClassVar[type[Refusal]] = Refusal

    def __init__(
        self,
        pdp: DecisionPoint,
        *,
        config: WebConfig,
        debug: bool | None = None,
        require_all: bool = False,
    ) -> None:
        if not isinstance(config, WebConfig):
            raise WebConfigError("config must be a zerotrust.web.WebConfig")
        if not callable(getattr(pdp, "evaluate_async", None)):
            raise WebConfigError(
                "pdp must be a zerotrust.PolicyDecisionPoint (e.g. "
                "PolicyDecisionPoint.from_path('policies/')) or a remote one "
                "(zerotrust.client.AsyncAuthZENClient)"
            )
        self._gate = Gate(pdp, _no_routes, config)
        self._debug_gate = Gate(pdp, _no_routes, attrs.evolve(config, expose_reasons=True))
        self._debug = debug
        self._require_all = require_all

    @property
    def config(self) -> WebConfig:
        return self._gate.config

    @property
    def gate(self) -> Gate:
        """The enforcement core this app shares with :class:`ZeroTrustBackend`."""
        return self._gate

    def guard(
        self,
        resource_type: str,
        action: str,
        *,
        resource_id: str | None = None,
        properties: Part = None,
        context: Part = None,
    ) -> Callable[[Callable[..., Any]], Callable[..., Awaitable[Any]]]:
        """Decide before a plain Starlette endpoint (``request`` or ``websocket``) runs.

        The endpoint runs only on allow; the decision is in ``request.state.zerotrust``
        (:func:`~zerotrust.web.asgi.decision_of`). Sync endpoints run in a thread, as
        Starlette runs them.
        """
        requirement = Requirement(resource_type, action, resource_id, properties, context)

        def decorate(endpoint: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
            if inspect.isclass(endpoint):  # an HTTPEndpoint is called as an ASGI app
                raise WebConfigError(
                    f"guard: {endpoint.__name__} is a class; guard a function endpoint "
                    "(request) -> response"
                )

            @functools.wraps(endpoint)
            async def guarded(connection: HTTPConnection) -> Any:
                await self._decide(connection, requirement)
                if inspect.iscoroutinefunction(endpoint):
                    return await endpoint(connection)
                return await run_in_threadpool(endpoint, connection)

            guarded.zerotrust_requirement = requirement  # type: ignore[attr-defined]
            return guarded

        return decorate

    def install(self, app: Starlette) -> None:
        """Register the refusal handlers and the obligation middleware; check the routes.

        The middleware goes innermost, so that the app's own middleware (compression,
        say) sees the rewritten body. A route whose ``resource_id`` names no path
        parameter is a :class:`WebConfigError` here, not a 500 later.
        """
        if getattr(app, "middleware_stack", None) is not None:
            raise WebConfigError("zt.install(app) must run before the app serves its first request")
        if any(m.kwargs.get("zt") is self for m in app.user_middleware):
            raise WebConfigError("zt.install(app) was already called for this app")
        _check_routes(app, self)
        app.add_exception_handler(self.refusal, self._on_refusal)
        app.add_exception_handler(AccessDenied, self._on_access_denied)
        app.user_middleware.append(Middleware(_Enforcer, zt=self))

    def _gate_for(self, connection: HTTPConnection) -> Gate:
        debug = self._debug
        if debug is None:
            debug = bool(getattr(connection.scope.get("app"), "debug", False))
        return self._debug_gate if debug else self._gate

    async def _decide(self, connection: HTTPConnection, requirement: Requirement) -> Decision:
        scope = connection.scope
        slot = scope.get(_SLOT)
        if not isinstance(slot, _Slot):
            raise WebConfigError("zerotrust: call zt.install(app) before serving requests")
        gate = self._gate_for(connection)
        http = http_request(scope)
        target = await _target(connection, requirement, http.route_method)
        judged = await judge(gate, http, target)
        if isinstance(judged, Reply):
            raise self.refusal(judged, None)
        verdict, prepared = judged
        decision = verdict.decision
        if verdict.reply is not None:
            raise self.refusal(verdict.reply, decision)
        slot.allowed = True
        if verdict.plan is not None:
            slot.rewrites.append((verdict.plan, gate, decision))
            # A rewritten body must pass through send, not the server's file path.
            scope.update(without_pathsend(scope))
        state = scope.setdefault("state", {})
        state[STATE_KEY] = decision
        state[REQUEST_STATE_KEY] = prepared.access
        CURRENT_REQUEST.set(prepared.access)  # reset by _Enforcer when the request ends
        return decision

    def route_requirements(self, route: BaseRoute) -> list[Requirement] | None:
        """What ``route`` declares; ``None``: not an endpoint of the app's own (a ``Mount``),
        which ``require_all`` leaves alone."""
        if isinstance(route, Route | WebSocketRoute):
            found = getattr(route.endpoint, "zerotrust_requirement", None)
            return [found] if isinstance(found, Requirement) else []
        return None

    async def _refused_undeclared(self, scope: Scope, send: Send) -> bool:
        """With ``require_all``: refuse a request the router sends to an undeclared route."""
        routes = getattr(getattr(scope.get("app"), "router", None), "routes", ())
        for route in routes:
            match, _ = route.matches(scope)
            if match is not Match.FULL:
                continue
            if self.route_requirements(route) != []:  # declared, or not the app's own
                return False
            gate = self._gate_for(HTTPConnection(scope))
            judged = await judge(gate, http_request(scope), None)
            reply = judged if isinstance(judged, Reply) else judged[0].reply
            if reply is None:  # the gate refuses every request without a target
                raise WebConfigError("an undeclared route was not refused")
            await refuse(scope, send, reply)
            return True
        return False

    async def _on_refusal(self, connection: HTTPConnection, exc: Exception) -> Any:
        if not isinstance(exc, Refusal):  # registered for Refusal only
            raise exc
        return _answer(connection, exc.reply)

    async def _on_access_denied(self, connection: HTTPConnection, exc: Exception) -> Any:
        """``@require`` raised inside a view: answered as the gate answers, not a 500."""
        if not isinstance(exc, AccessDenied):
            raise exc
        return _answer(connection, self._gate_for(connection).refusal(exc.decision))


def _answer(connection: HTTPConnection, reply: Reply) -> Any:
    slot = connection.scope.get(_SLOT)
    if isinstance(slot, _Slot):
        slot.rewrites.clear()  # the refusal is ours, sent as it is
    if connection.scope["type"] == "http":
        return Response(reply.body, reply.status, headers=dict(reply.headers))
    # A WebSocket handshake: a denial response, or close 1008.
    return _RefuseApp(reply, slot.send if isinstance(slot, _Slot) else None)


class _RefuseApp:
    def __init__(self, reply: Reply, server_send: Send | None) -> None:
        self.reply = reply
        self.server_send = server_send

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await refuse(scope, send, self.reply)
        # The handler's send is Starlette's wrapper, which refuse cannot see through:
        # let uvicorn's own know the denial is complete (else it logs an ERROR per refusal).
        if self.server_send is not None and self.server_send is not send:
            settle_denial(self.server_send)


async def _target(connection: HTTPConnection, req: Requirement, method: str) -> Target:
    raw = dict(connection.path_params)
    params = {k: str(v) for k, v in raw.items()}
    rid = None
    if req.resource_id is not None:
        if req.resource_id not in params:
            raise WebConfigError(f"requires: the route has no path parameter {req.resource_id!r}")
        rid = params.pop(req.resource_id)
    properties, extra = await req.lookup(raw, connection)
    context = dict(extra or {})
    if params:
        context["path_params"] = params
    route = connection.scope.get("route")
    template = getattr(route, "path_format", None)  # never the raw path: it may hold ids
    return Target(
        resource_type=req.resource_type,
        action=req.action,
        resource_id=rid,
        resource_properties=properties or {},
        context=context,
        route=f"{method} {template}" if isinstance(template, str) else None,
    )


def _lookup(part: Part, what: str) -> Lookup:
    """How to call one request part: a plain function in the threadpool, as FastAPI
    runs a sync dependency (a database query must not stall the event loop), an async
    one awaited on the loop. Its exceptions propagate: the request fails, never allowed.
    """
    try:
        caller = request_part(part)
    except (TypeError, ValueError) as exc:  # a callable inspect cannot read
        raise WebConfigError(f"requires: {what}= has no signature to call it with") from exc
    on_loop = part is None or isinstance(part, Mapping) or is_async(part)

    async def call(params: Mapping[str, Any], connection: HTTPConnection) -> Any:
        available = {"request": connection, **params}
        found: Any = caller(available) if on_loop else await run_in_threadpool(caller, available)
        if inspect.isawaitable(found):  # async def, or a plain function returning one
            found = await found
        if found is not None and not isinstance(found, Mapping):
            raise WebConfigError(
                f"requires: {what} returned a {type(found).__name__}, not a mapping"
            )
        return found

    return call


def _check_routes(app: Starlette, zt: ZeroTrust) -> None:
    for route in app.routes:
        requirements = zt.route_requirements(route)
        if not requirements or not isinstance(route, Route | WebSocketRoute):
            continue
        names = set(route.param_convertors)
        for requirement in requirements:
            if requirement.resource_id is not None and requirement.resource_id not in names:
                raise WebConfigError(
                    f"route {route.path}: requires(resource_id={requirement.resource_id!r}) "
                    f"names no path parameter (it has {sorted(names) or 'none'})"
                )
            missing_arguments(requirement.needs, [*names, "request"], route.path)


class _Enforcer:
    """Applies the decisions' obligations to the response of a protected route.

    Routes whose dependencies recorded no obligation plan stream through untouched;
    otherwise the body is rewritten by the middleware's own rewriter, which withholds
    (500) anything it cannot rewrite rather than release it unmasked.
    """

    def __init__(self, app: ASGIApp, zt: ZeroTrust) -> None:
        self.app = app
        self.zt = zt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        slot = _Slot(send)
        scope[_SLOT] = slot
        token = CURRENT_REQUEST.set(None)
        try:
            if self.zt._require_all and await self.zt._refused_undeclared(scope, send):
                return
            if scope["type"] == "websocket":
                await self.app(scope, receive, send)
                return
            sender = _Sender(send, slot)
            await self.app(scope, receive, sender)
            await sender.finish()
        finally:
            CURRENT_REQUEST.reset(token)


class _Sender:
    """Chooses at the response's start: pass through, or rewrite through every plan."""

    def __init__(self, send: Send, slot: _Slot) -> None:
        self._send = send
        self._slot = slot
        self._chain: list[Rewriter] | None = None

    async def __call__(self, message: Any) -> None:
        if message["type"] == "http.response.start" and self._slot.allowed:
            message = {**message, "headers": _private(message.get("headers") or [])}
        if self._chain is None and message["type"] == "http.response.start":
            chain: list[Rewriter] = []
            downstream: Send = self._send
            for plan, gate, decision in self._slot.rewrites:
                rewriter = Rewriter(downstream, plan, gate, decision)
                chain.append(rewriter)
                downstream = rewriter
            self._chain = chain
        if self._chain:
            await self._chain[-1](message)
        else:
            await self._send(message)

    async def finish(self) -> None:
        for rewriter in reversed(self._chain or []):
            await rewriter.finish()


def _private(headers: Any) -> list[tuple[bytes, bytes]]:
    """``Cache-Control`` with ``private`` (and without ``public``): a response released
    under an allow is for that subject only, never a cache's to replay to anyone (an
    ``identify=`` from a cookie or a gateway header is in no cache key)."""
    kept: list[tuple[bytes, bytes]] = []
    directives: list[bytes] = []
    for name, value in headers:
        if name.lower() == b"cache-control":
            directives += [d.strip() for d in value.split(b",") if d.strip()]
        else:
            kept.append((name, value))
    directives = [d for d in directives if d.lower() not in (b"public", b"private")]
    return [*kept, (b"cache-control", b", ".join([b"private", *directives]))]


class VerifiedSubject(BaseUser):
    """``request.user``: the subject the token vouches for, and the device's posture."""

    def __init__(self, subject: Mapping[str, Any], device: Mapping[str, Any]) -> None:
        self.subject = subject
        self.device = device

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def identity(self) -> str:
        return str(self.subject.get("id", ""))

    @property
    def display_name(self) -> str:
        properties = self.subject.get("properties") or {}
        name = properties.get("name") if isinstance(properties, Mapping) else None
        return str(name or self.identity)


class ZeroTrustBackend(AuthenticationBackend):
    """Verifies the token and device attestation as the guard does (same configuration)."""

    def __init__(self, zt: ZeroTrust) -> None:
        if not isinstance(zt, ZeroTrust):
            raise WebConfigError("ZeroTrustBackend takes the app's zerotrust ZeroTrust (guard)")
        self._gate = zt.gate

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        identity = await identify(self._gate, http_request(conn.scope))
        if identity.subject is None:
            return None
        return AuthCredentials(["authenticated"]), VerifiedSubject(
            identity.subject, identity.device
        )
