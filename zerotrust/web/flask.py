"""Flask extension: the policy enforcement point on the views Flask's own router dispatches.

::

    zt = ZeroTrust(app, pdp=pdp, config=WebConfig(jwt=verifier))   # or zt.init_app(app)

    @app.get("/customers/<customer_id>")
    @zt.requires("customer_record", "read", resource_id="customer_id")
    def customer(customer_id): ...           # g.zerotrust_decision, g.zerotrust_request

The view's ``request.view_args`` give ``resource.id`` and ``context.path_params``: no
second route table. A refusal is raised as an exception that is both a Werkzeug
``HTTPException`` (401/403, so ``@app.errorhandler(403)`` sees it) and the
:class:`~zerotrust.web.AccessDenied` / :class:`~zerotrust.web.StepUpRequired` of
``zerotrust.web``; its response is exactly the WSGI middleware's (the shared
:class:`~zerotrust.web._pep.Gate` makes it). Obligations of an allowed decision are
applied to the view's JSON response in ``after_request``; one that cannot be rewritten
is withheld.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar, cast

import attrs
from flask import Flask, current_app, g, request
from werkzeug.exceptions import Forbidden, HTTPException, ServiceUnavailable, Unauthorized
from werkzeug.wrappers import Response

from zerotrust.decision import Decision
from zerotrust.engine import DecisionPoint
from zerotrust.errors import ZeroTrustError
from zerotrust.web._parts import is_async, missing_arguments, required_arguments
from zerotrust.web._pep import (
    BODY_DIGESTS,
    CURRENT_REQUEST,
    Gate,
    Part,
    Prepared,
    Reply,
    delegated_body,
    request_part,
    rewrite_json,
)
from zerotrust.web._wsgi import http_request
from zerotrust.web.errors import AccessDenied, StepUpRequired, WebConfigError
from zerotrust.web.http import Target, WebConfig, with_properties
from zerotrust.web.obligations import ObligationPlan

__all__ = [
    "AccessRefused",
    "AuthenticationRefused",
    "Refused",
    "StepUpRefused",
    "Unavailable",
    "ZeroTrust",
]

F = TypeVar("F", bound=Callable[..., Any])
EXTENSION = "zerotrust"
_PLAN = "_zerotrust_plan"
_GUARDED = "__zerotrust_guarded__"  # set on every view @requires wraps
_BARE = "__zerotrust_bare__"  # set on the function @requires wrapped: routing to it is undecided


class Refused(ZeroTrustError, HTTPException):
    """A refusal, answered as the WSGI middleware answers it (problem+json, challenge).

    ``reply`` is that answer and ``code`` its HTTP status. Each refusal is also
    Werkzeug's ``Forbidden`` or ``Unauthorized``, so ``@app.errorhandler(403)`` /
    ``(401)`` see it, and (but for a request that could not be put to the PDP at all)
    an :class:`~zerotrust.web.AccessDenied` carrying the ``decision``.
    """

    reply: Reply

    def _carry(self, reply: Reply) -> None:
        # Set here, not by HTTPException.__init__: a subclass that is also an OSError
        # (AccessDenied is a PermissionError) never runs that initialiser, so Refused
        # has no __init__ of its own to be called in its place.
        self.reply = reply
        self.code = reply.status
        self.description = reply.code
        self.response = None

    def get_response(self, environ: Any = None, scope: Any = None) -> Response:
        reply = self.reply
        return Response(reply.body, status=reply.status, headers=list(reply.headers))


class AccessRefused(AccessDenied, Refused, Forbidden):
    """403: the decision is deny, or an allow whose obligations cannot be carried out."""

    def __init__(self, reply: Reply, decision: Decision) -> None:
        AccessDenied.__init__(self, decision, f"{reply.code} (decision {decision.decision_id})")
        self._carry(reply)


class AuthenticationRefused(AccessDenied, Refused, Unauthorized):
    """401 with the RFC 6750 bearer challenge: no token, or one that does not verify."""

    def __init__(self, reply: Reply, decision: Decision) -> None:
        AccessDenied.__init__(self, decision, f"{reply.code} (decision {decision.decision_id})")
        self._carry(reply)


class StepUpRefused(StepUpRequired, Refused, Unauthorized):
    """401 with the RFC 9470 challenge: the decision is step_up."""

    def __init__(self, reply: Reply, decision: Decision) -> None:
        StepUpRequired.__init__(self, decision)
        self._carry(reply)


class Unavailable(Refused, ServiceUnavailable):
    """503 with ``Retry-After``: no decision could be had (a remote PDP down)."""

    def __init__(self, reply: Reply) -> None:
        HTTPException.__init__(self)
        self._carry(reply)


class _Unevaluable(Refused, Forbidden):
    """403 for a request that could not be built, so never reached the PDP."""

    def __init__(self, reply: Reply) -> None:
        HTTPException.__init__(self)
        self._carry(reply)


def _refusal(reply: Reply, decision: Decision) -> Refused:
    if reply.code == "step_up_required":
        return StepUpRefused(reply, decision)
    if reply.status == 401:
        return AuthenticationRefused(reply, decision)
    return AccessRefused(reply, decision)


@attrs.frozen
class _State:
    """What one app's extension needs per request; kept in ``app.extensions``."""

    gate: Gate
    debug_gate: Gate
    debug: bool | None
    require_all: bool
    exempt: frozenset[str]

    def current_gate(self) -> Gate:
        """The gate whose refusals carry the reasons in debug mode (checked per request)."""
        debug = current_app.debug if self.debug is None else self.debug
        return self.debug_gate if debug else self.gate

    def prepare(self, target: Target | None) -> tuple[Gate, Prepared]:
        gate = self.current_gate()
        http, _ = http_request(request.environ)
        # The method Werkzeug serves (upper-cased: a "delete" is a DELETE), not the raw one:
        # context.method must be what the view runs as.
        http = attrs.evolve(http, method=request.method)
        prepared = gate.prepare(http, target, gate.identify(http))
        if isinstance(prepared, Reply):
            raise _Unevaluable(prepared)
        return gate, prepared

    def admit(self, gate: Gate, prepared: Prepared, decision: Decision | Reply) -> None:
        """Raise the refusal, or record the allow on ``g`` for the view and after_request."""
        if isinstance(decision, Reply):
            raise Unavailable(decision)
        verdict = gate.verdict(decision, prepared)
        if verdict.reply is not None:
            raise _refusal(verdict.reply, decision)
        g.zerotrust_decision = decision
        g.zerotrust_request = prepared.access
        if verdict.plan is not None:
            # A declared view called from another one adds its obligations; it never
            # replaces those of the view whose response this is.
            held: list[tuple[Gate, Decision, ObligationPlan]] = getattr(g, _PLAN, [])
            setattr(g, _PLAN, [*held, (gate, decision, verdict.plan)])


def _state() -> _State:
    found = current_app.extensions.get(EXTENSION)
    if not isinstance(found, _State):
        raise WebConfigError("zerotrust: ZeroTrust.init_app(app) was not called for this app")
    return found


def _no_route(http: Any) -> None:
    return None  # Flask routes; the gates never consult a route table


class ZeroTrust:
    """The Flask extension: ``ZeroTrust(app, ...)`` or ``ZeroTrust(...).init_app(app)``.

    Unset arguments come from ``app.config``: ``ZEROTRUST_PDP`` (a
    :class:`~zerotrust.PolicyDecisionPoint` or another
    :class:`~zerotrust.DecisionPoint`), ``ZEROTRUST_CONFIG`` (a
    :class:`~zerotrust.web.WebConfig`), ``ZEROTRUST_DEBUG`` (refusals carry the
    reasons; default: ``app.debug``), ``ZEROTRUST_REQUIRE_ALL`` (refuse every request
    whose view is not declared with :meth:`requires`, 404s included; default off) and
    ``ZEROTRUST_EXEMPT`` (endpoints ``require_all`` lets through, e.g. ``{"static"}``).
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        pdp: DecisionPoint | None = None,
        config: WebConfig | None = None,
        debug: bool | None = None,
        require_all: bool | None = None,
        exempt: Collection[str] | None = None,
    ) -> None:
        self.pdp, self.config, self.debug = pdp, config, debug
        self.require_all, self.exempt = require_all, exempt
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Check the configuration, then register the error handler and the hooks."""
        if EXTENSION in app.extensions:
            raise WebConfigError("zerotrust: init_app was already called for this app")
        pdp = self.pdp if self.pdp is not None else app.config.get("ZEROTRUST_PDP")
        config = self.config if self.config is not None else app.config.get("ZEROTRUST_CONFIG")
        if pdp is None or not callable(getattr(pdp, "evaluate", None)):
            raise WebConfigError(
                "zerotrust: pdp= (or ZEROTRUST_PDP) must be a PolicyDecisionPoint or a "
                "remote one (zerotrust.client.AuthZENClient)"
            )
        if not isinstance(config, WebConfig):
            raise WebConfigError("zerotrust: config= (or ZEROTRUST_CONFIG) must be a WebConfig")
        debug = self.debug if self.debug is not None else app.config.get("ZEROTRUST_DEBUG")
        require_all = self._option(app, self.require_all, "ZEROTRUST_REQUIRE_ALL", False)
        exempt = self.exempt if self.exempt is not None else app.config.get("ZEROTRUST_EXEMPT", ())
        if not isinstance(exempt, Collection) or isinstance(exempt, str | bytes):
            raise WebConfigError("zerotrust: exempt must be a collection of endpoint names")
        if not all(isinstance(e, str) for e in exempt):
            raise WebConfigError("zerotrust: exempt must be a collection of endpoint names")
        if debug is not None and not isinstance(debug, bool):
            raise WebConfigError("zerotrust: ZEROTRUST_DEBUG must be True, False or unset")
        state = _State(
            Gate(pdp, _no_route, config),
            Gate(pdp, _no_route, attrs.evolve(config, expose_reasons=True)),
            debug,
            require_all,
            frozenset(exempt),
        )
        app.extensions[EXTENSION] = state
        app.register_error_handler(Refused, _answer)
        app.before_request(_guard_undeclared)
        app.after_request(_release)

    @staticmethod
    def _option(app: Flask, given: bool | None, key: str, default: bool) -> bool:
        value = given if given is not None else app.config.get(key, default)
        if not isinstance(value, bool):
            raise WebConfigError(f"zerotrust: {key} must be True or False")
        return value

    def requires(
        self,
        resource_type: str,
        action: str,
        *,
        resource_id: str | None = None,
        properties: Mapping[str, Any] | Callable[..., Mapping[str, Any] | None] | None = None,
        context: Mapping[str, Any] | Callable[..., Mapping[str, Any] | None] | None = None,
    ) -> Callable[[F], F]:
        """Decide before the view runs: put it *below* ``@app.route`` (Flask routes to
        what ``route`` was given). ``resource_id`` names the view argument that becomes
        ``resource.id``; the other view arguments go to ``context.path_params``, never
        to resource properties, which a URL must not choose. ``properties`` and
        ``context`` are mappings or functions of the view arguments they name (the
        record's attributes, as the view will load it; ``None``: unknown).
        """
        for name, value in (("resource_type", resource_type), ("action", action)):
            if not isinstance(value, str) or not value:
                raise WebConfigError(f"requires: {name} must be a non-empty string")
        if resource_id is not None and (not isinstance(resource_id, str) or not resource_id):
            raise WebConfigError("requires: resource_id names a view argument")
        parts = (("properties", properties), ("context", context))
        for what, part in parts:
            if callable(part) and is_async(part):
                raise WebConfigError(
                    f"requires: {what}= is async; Flask calls it before the view, "
                    "synchronously: give a plain function"
                )
        needs = [(what, required_arguments(part, f"requires: {what}")) for what, part in parts]
        lookup = request_part(cast(Part, properties))
        extra_context = request_part(cast(Part, context))

        def target() -> Target:
            args: dict[str, Any] = dict(request.view_args or {})
            rid: str | None = None
            if resource_id is not None:
                if resource_id not in args:
                    raise WebConfigError(
                        f"requires: the route {request.url_rule} has no <{resource_id}>"
                    )
                rid = str(args[resource_id])
            missing_arguments(needs, args, str(request.url_rule))
            found_context = extra_context(args)
            if found_context is not None and not isinstance(found_context, Mapping):
                raise WebConfigError("requires: context= gave no mapping")
            params = {k: str(v) for k, v in args.items() if k != resource_id}
            ctx = {**(found_context or {}), **({"path_params": params} if params else {})}
            rule = request.url_rule.rule if request.url_rule is not None else request.path
            plain = Target(resource_type, action, rid, {}, ctx, f"{request.method} {rule}")
            return with_properties(plain, lookup(args))

        def decorate(view: F) -> F:
            if inspect.iscoroutinefunction(view):

                @functools.wraps(view)
                async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                    state = _state()
                    gate, prepared = state.prepare(target())
                    state.admit(gate, prepared, await gate.decide_async(prepared))
                    token = CURRENT_REQUEST.set(prepared.access)
                    try:
                        return await view(*args, **kwargs)
                    finally:
                        CURRENT_REQUEST.reset(token)

                setattr(guarded_async, _GUARDED, True)
                _mark_bare(view)
                return cast(F, guarded_async)

            @functools.wraps(view)
            def guarded(*args: Any, **kwargs: Any) -> Any:
                state = _state()
                gate, prepared = state.prepare(target())
                state.admit(gate, prepared, gate.decide(prepared))
                token = CURRENT_REQUEST.set(prepared.access)
                try:
                    return view(*args, **kwargs)
                finally:
                    CURRENT_REQUEST.reset(token)

            setattr(guarded, _GUARDED, True)
            _mark_bare(view)
            return cast(F, guarded)

        return decorate


def _answer(exc: Refused) -> Response:
    """The registered error handler: the refusal's own response, nothing to release."""
    if hasattr(g, _PLAN):
        delattr(g, _PLAN)
    return exc.get_response()


def _mark_bare(view: Any) -> None:
    with contextlib.suppress(AttributeError, TypeError):  # a callable without attributes
        setattr(view, _BARE, True)


def _guard_undeclared() -> None:
    """With ``require_all``, a request whose view was not declared is asked and refused.

    Always: a request routed to the bare function that ``@zt.requires`` wrapped (the
    decorator was put above ``@app.route``) is an error, never served undecided.
    """
    state = _state()
    endpoint = request.endpoint
    view = current_app.view_functions.get(endpoint) if endpoint is not None else None
    if getattr(view, _BARE, False) and not getattr(view, _GUARDED, False):
        raise WebConfigError(
            f"zerotrust: the view {endpoint!r} was routed before @zt.requires wrapped it: "
            "put @zt.requires below @app.route"
        )
    if not state.require_all:
        return
    if endpoint in state.exempt or _declared(view, request.method):
        return
    gate, prepared = state.prepare(None)
    state.admit(gate, prepared, gate.decide(prepared))  # no target: always refused
    raise WebConfigError("zerotrust: an undeclared request was not refused")  # unreachable


def _declared(view: Any, method: str) -> bool:
    """Whether ``@requires`` guards the view, or the ``MethodView`` method it dispatches to."""
    if getattr(view, _GUARDED, False):
        return True
    handlers = getattr(view, "view_class", None)
    handler = getattr(handlers, method.lower(), None)
    if handler is None and method == "HEAD":
        handler = getattr(handlers, "get", None)
    return bool(getattr(handler, _GUARDED, False))


def _release(response: Response) -> Response:
    """Apply the allowed decisions' obligations to the JSON body, or withhold it."""
    if hasattr(g, "zerotrust_decision"):
        # Released under an allow: for that subject only, never a cache's to serve to
        # anyone undecided (identify= from a cookie or a gateway header is no Vary).
        response.cache_control.private = True
        response.cache_control.public = False
    held: list[tuple[Gate, Decision, ObligationPlan]] = getattr(g, _PLAN, [])
    if not held:
        return response
    delattr(g, _PLAN)
    gate, decision, _ = held[0]
    body, failed = _read(response, gate.config.max_body_bytes)
    failed = failed or delegated_body(list(response.headers.items()))
    original = body
    for step_gate, step_decision, plan in held:
        if failed is not None or not body:
            break
        rewritten = rewrite_json(response.status_code, list(response.headers.items()), body, plan)
        if isinstance(rewritten, str):
            failed, gate, decision = rewritten, step_gate, step_decision
        else:
            body = rewritten
    if failed is None:
        if body != original:
            for name in BODY_DIGESTS:  # of the unmasked body: an oracle for what was masked
                response.headers.pop(name, None)
        response.set_data(body)  # the body was read (a stream is used up): put it back
        return response
    reply = gate.failed_obligation(decision, failed)
    return Response(reply.body, status=reply.status, headers=list(reply.headers))


def _read(response: Response, limit: int) -> tuple[bytes, str | None]:
    """The whole body (streamed ones too), or why it was not read to the end."""
    chunks: list[bytes] = []
    size, failed = 0, None
    source: Iterable[bytes] = response.iter_encoded()
    try:
        for chunk in source:
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                failed = "response larger than max_body_bytes"
                break
    finally:
        close = getattr(response.response, "close", None)
        if close is not None:
            close()
    return b"".join(chunks), failed
