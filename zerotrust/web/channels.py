"""Django Channels: a WebSocket consumer is decided at its handshake, before it can accept.

::

    # asgi.py
    from channels.routing import ProtocolTypeRouter, URLRouter
    from zerotrust.web.channels import ZeroTrustMiddleware, requires

    watch = requires("customer_record", "watch", resource_id="customer_id")
    application = ProtocolTypeRouter({
        "http": get_asgi_application(),
        "websocket": ZeroTrustMiddleware(URLRouter([
            watch(path("ws/customers/<str:customer_id>/live", LiveConsumer.as_asgi())),
        ])),
    })

The stack middleware holds the gate (built from ``settings.ZEROTRUST`` as the Django
middleware's is); ``requires`` declares the consumer's route (the ``path(...)`` itself)
and decides after ``URLRouter`` has matched it, so the route's keyword arguments give
``resource.id`` and its pattern is ``context.route``: no second route table. A refusal
is the one the ASGI middleware sends (:func:`zerotrust.web._asgi.refuse`): the
problem+json response with its challenge where the server offers the
``websocket.http.response`` extension, else a close with code 1008. An allowed consumer
finds the decision in ``scope["zerotrust_decision"]`` and the access request in
``scope["zerotrust_request"]``. Channels is optional at runtime: only this module
imports it.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import attrs
from asgiref.sync import iscoroutinefunction
from channels.db import database_sync_to_async  # type: ignore[import-untyped]
from django.conf import settings
from django.urls import URLPattern

from zerotrust.web._asgi import ASGIApp, Receive, Scope, Send, http_request, judge, refuse
from zerotrust.web._pep import CURRENT_REQUEST, Gate, Part, Reply, request_part
from zerotrust.web.django_config import DjangoConfigError, check_declaration, load_settings
from zerotrust.web.errors import UnsupportedScopeError
from zerotrust.web.http import Target, with_properties

__all__ = ["DECISION_KEY", "REQUEST_KEY", "ZeroTrustMiddleware", "requires"]

DECISION_KEY = "zerotrust_decision"
REQUEST_KEY = "zerotrust_request"
_GATE_KEY = "zerotrust_gate"


def _no_route(http: Any) -> None:
    return None  # Channels' URLRouter resolves; the gate never consults a route table


class ZeroTrustMiddleware:
    """Wraps the WebSocket router: gives the consumers that ``requires`` declares their
    gate. Only ``websocket`` scopes: anything else is refused, not passed through."""

    def __init__(self, inner: ASGIApp) -> None:
        self.inner = inner
        pdp, config, self.debug = load_settings()
        self.gate = Gate(pdp, _no_route, config)
        self.debug_gate = Gate(pdp, _no_route, attrs.evolve(config, expose_reasons=True))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "websocket":
            raise UnsupportedScopeError(
                f"zerotrust.web.channels: scope type {scope.get('type')!r} is not decided "
                "here; wrap only the 'websocket' router"
            )
        debug = settings.DEBUG if self.debug is None else self.debug
        gate = self.debug_gate if debug else self.gate
        await self.inner({**scope, _GATE_KEY: gate}, receive, send)


@attrs.frozen
class _Spec:
    resource_type: str
    action: str
    resource_id: str | None
    properties: Callable[[Mapping[str, Any]], Any]
    context: Callable[[Mapping[str, Any]], Any]


def requires(
    resource_type: str,
    action: str,
    *,
    resource_id: str | None = None,
    properties: Part = None,
    context: Part = None,
) -> Callable[[Any], Any]:
    """Declare a consumer's route, ``requires(...)(path(route, Consumer.as_asgi()))``, or
    the consumer app itself: decided before it runs.

    ``resource_id`` names the route's keyword argument for ``resource.id``; the others go
    to ``context.path_params``. ``properties`` / ``context`` are mappings or functions of
    the keyword arguments they name (sync ones run in a thread with a database
    connection, as ``database_sync_to_async`` runs them; ``None``: unknown record).
    Given the ``path(...)``, its pattern is ``context.route`` and the path the decision log
    gets (``WEBSOCKET /ws/customers/<str:id>/live``); given the app alone there is no
    route to name (Channels keeps no pattern in the scope), so neither has one.
    """
    check_declaration(resource_type, action, resource_id)
    spec = _Spec(resource_type, action, resource_id, _part(properties), _part(context))

    def decorate(declared: Any) -> Any:
        if isinstance(declared, URLPattern):
            pattern = str(declared.pattern).removeprefix("^").removesuffix("$")
            guarded = _guard(declared.callback, spec, f"WEBSOCKET /{pattern}")
            return URLPattern(declared.pattern, guarded, declared.default_args, declared.name)
        return _guard(declared, spec, None)

    return decorate


def _guard(app: ASGIApp, spec: _Spec, route: str | None) -> ASGIApp:
    @functools.wraps(app)
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        gate = scope.get(_GATE_KEY)
        if not isinstance(gate, Gate):
            raise DjangoConfigError(
                "zerotrust: a declared consumer ran undecided: wrap the websocket router "
                "in zerotrust.web.channels.ZeroTrustMiddleware"
            )
        decided = await _decide(gate, scope, await _target(spec, scope, route))
        if isinstance(decided, Reply):
            await refuse(scope, send, decided)
            return
        decision, access = decided
        token = CURRENT_REQUEST.set(access)
        try:
            await app({**scope, DECISION_KEY: decision, REQUEST_KEY: access}, receive, send)
        finally:
            CURRENT_REQUEST.reset(token)

    return guarded


def _part(value: Part) -> Callable[[Mapping[str, Any]], Awaitable[Any]]:
    """An awaitable part: a sync function runs off the event loop, with the ORM usable."""
    call = request_part(value)
    if callable(value) and not isinstance(value, Mapping) and not iscoroutinefunction(value):
        return database_sync_to_async(call)  # type: ignore[no-any-return]

    async def awaited(arguments: Mapping[str, Any]) -> Any:
        found: Any = call(arguments)
        return await found if inspect.isawaitable(found) else found

    return awaited


async def _target(spec: _Spec, scope: Scope, route: str | None) -> Target:
    kwargs: Mapping[str, Any] = (scope.get("url_route") or {}).get("kwargs") or {}
    rid: str | None = None
    if spec.resource_id is not None:
        if spec.resource_id not in kwargs:
            raise DjangoConfigError(
                f"requires: the route gives the consumer no <{spec.resource_id}>"
            )
        rid = str(kwargs[spec.resource_id])
    found_context = await spec.context(kwargs)
    if found_context is not None and not isinstance(found_context, Mapping):
        raise DjangoConfigError("requires: context= gave no mapping")
    params = {k: str(v) for k, v in kwargs.items() if k != spec.resource_id}
    ctx = {**(found_context or {}), **({"path_params": params} if params else {})}
    plain = Target(spec.resource_type, spec.action, rid, {}, ctx, route)
    return with_properties(plain, await spec.properties(kwargs))


async def _decide(gate: Gate, scope: Scope, target: Target) -> Reply | tuple[Any, Any]:
    judged = await judge(gate, http_request(scope), target)
    if isinstance(judged, Reply):
        return judged
    verdict, prepared = judged
    if verdict.reply is not None:
        return verdict.reply
    return verdict.decision, prepared.access
