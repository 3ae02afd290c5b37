"""Django integration: the policy enforcement point on the views Django's URL resolver picks.

::

    # settings.py
    MIDDLEWARE = [..., "zerotrust.web.django.ZeroTrustMiddleware"]
    ZEROTRUST = {"PDP": "myproject.security.build_pdp", "CONFIG": "myproject.security.CONFIG"}

    # views.py
    @requires("customer_record", "read", resource_id="customer_id")
    def customer(request, customer_id): ...   # request.zerotrust_decision

The middleware's ``process_view`` runs after URL resolution, so the view's keyword
arguments give ``resource.id`` and ``context.path_params``: no second route table.
Refusals are exactly the WSGI middleware's (the shared :class:`~zerotrust.web._pep.Gate`
makes them), as Django responses; obligations of an allow are applied to the view's JSON
response on the way out, and one that cannot be rewritten is withheld. Views that are
not declared are left alone.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextvars import ContextVar
from typing import Any, TypeVar, cast

import attrs
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.utils.cache import patch_cache_control

from zerotrust.decision import Decision
from zerotrust.errors import ZeroTrustError
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
from zerotrust.web.django_config import DjangoConfigError, check_declaration, load_settings
from zerotrust.web.http import Target, with_properties
from zerotrust.web.obligations import ObligationPlan

__all__ = [
    "DjangoConfigError",
    "Refused",
    "ZeroTrustMiddleware",
    "ZeroTrustRequiredMixin",
    "decide",
    "gate_of",
    "requires",
    "route_of",
]

F = TypeVar("F", bound=Callable[..., Any])
_SPEC = "__zerotrust_spec__"  # the _Spec on a view declared with @requires
_HELD = "_zerotrust_held"  # [(gate, decision, plan)] of the allows, on the request
_GATE = "_zerotrust_gate"  # the middleware's gate, for the DRF permission
OBJECT_PENDING = "_zerotrust_object_pending"  # DRF deferred to an object check not yet run
_DECIDED = "_zerotrust_decided"  # what process_view allowed: the _Spec or the view class
REFUSED = "_zerotrust_refused"  # the Reply of the last has_perm the backend refused
_NO_DATA = frozenset({401, 403, 404})  # answers that release no record

# The Django request the middleware is handling, for the authentication backend's
# has_perm (Django passes it no request). A ContextVar: each thread and task its own.
REQUEST_IN_PROGRESS: ContextVar[HttpRequest | None] = ContextVar(
    "zerotrust_django_request", default=None
)


@attrs.frozen
class _Spec:
    """What a declared view is about: how to build its :class:`Target`."""

    resource_type: str
    action: str
    resource_id: str | None
    properties: Callable[[Mapping[str, Any]], Any]
    context: Callable[[Mapping[str, Any]], Any]

    def target(self, request: HttpRequest, kwargs: Mapping[str, Any]) -> Target:
        rid: str | None = None
        if self.resource_id is not None:
            if self.resource_id not in kwargs:
                raise DjangoConfigError(
                    f"requires: the URL pattern gives the view no <{self.resource_id}>"
                )
            rid = str(kwargs[self.resource_id])
        found_context = self.context(kwargs)
        if found_context is not None and not isinstance(found_context, Mapping):
            raise DjangoConfigError("requires: context= gave no mapping")
        params = {k: str(v) for k, v in kwargs.items() if k != self.resource_id}
        ctx = {**(found_context or {}), **({"path_params": params} if params else {})}
        plain = Target(self.resource_type, self.action, rid, {}, ctx, route_of(request))
        return with_properties(plain, self.properties(kwargs))


def route_of(request: HttpRequest) -> str:
    """``"GET /customers/<str:id>"``: the method and the URL pattern Django resolved.

    A HEAD served by the GET handler (any view without a ``head`` of its own) is the GET
    route, as a route table matches it; ``extra.http.method`` keeps the real method.
    """
    match = request.resolver_match
    route = request.path_info
    if match is not None and match.route:  # a re_path (DRF's routers): without its anchors
        route = "/" + match.route.removeprefix("^").removesuffix("$")
    method = request.method or "GET"
    view_class = getattr(getattr(match, "func", None), "view_class", None)
    if method == "HEAD" and not hasattr(view_class, "head"):
        method = "GET"  # a function view, or View.setup's alias of head to get
    return f"{method} {route}"


def _spec(
    resource_type: Any,
    action: Any,
    resource_id: Any,
    properties: Any = None,
    context: Any = None,
) -> _Spec:
    check_declaration(resource_type, action, resource_id)
    return _Spec(
        resource_type,
        action,
        resource_id,
        request_part(cast(Part, properties)),
        request_part(cast(Part, context)),
    )


def _checked(request: HttpRequest, declaration: object) -> None:
    """A declared view runs only under an allow for itself: not without the middleware,
    and not called from another view, whose allow was for another resource."""
    decided = getattr(request, _DECIDED, None)
    if decided is None:
        raise DjangoConfigError(
            "zerotrust: a declared view ran undecided: add "
            "'zerotrust.web.django.ZeroTrustMiddleware' to settings.MIDDLEWARE"
        )
    if decided is not declaration:
        raise DjangoConfigError(
            "zerotrust: a declared view was called from another view; the allow was for "
            "the view Django resolved, not for this one"
        )


def requires(
    resource_type: str,
    action: str,
    *,
    resource_id: str | None = None,
    properties: Mapping[str, Any] | Callable[..., Mapping[str, Any] | None] | None = None,
    context: Mapping[str, Any] | Callable[..., Mapping[str, Any] | None] | None = None,
) -> Callable[[F], F]:
    """Declare a function view: the middleware decides before it runs.

    ``resource_id`` names the URL keyword argument that becomes ``resource.id``; the
    others go to ``context.path_params``, never to resource properties, which a URL must
    not choose. ``properties`` and ``context`` are mappings or functions of the keyword
    arguments they name (``None``: unknown record).
    """
    spec = _spec(resource_type, action, resource_id, properties, context)

    def decorate(view: F) -> F:
        if iscoroutinefunction(view):

            @functools.wraps(view)
            async def guarded_async(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
                _checked(request, spec)
                token = CURRENT_REQUEST.set(request.zerotrust_request)
                try:
                    return await view(request, *args, **kwargs)
                finally:
                    CURRENT_REQUEST.reset(token)

            setattr(guarded_async, _SPEC, spec)
            return cast(F, guarded_async)

        @functools.wraps(view)
        def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
            _checked(request, spec)
            token = CURRENT_REQUEST.set(request.zerotrust_request)
            try:
                return view(request, *args, **kwargs)
            finally:
                CURRENT_REQUEST.reset(token)

        setattr(guarded, _SPEC, spec)
        return cast(F, guarded)

    return decorate


class ZeroTrustRequiredMixin:
    """Declare a class-based view: put it first among the bases.

    ``resource_type`` and ``action`` are required; ``resource_id_kwarg`` names the URL
    keyword argument for ``resource.id``. Override :meth:`zerotrust_properties` /
    :meth:`zerotrust_context` (class methods of the URL keyword arguments) to give the
    policies the record's attributes.
    """

    resource_type: str | None = None
    action: str | None = None
    resource_id_kwarg: str | None = None

    @classmethod
    def zerotrust_properties(cls, **kwargs: Any) -> Mapping[str, Any] | None:
        return {}

    @classmethod
    def zerotrust_context(cls, **kwargs: Any) -> Mapping[str, Any] | None:
        return None

    @classmethod
    def zerotrust_spec(cls) -> _Spec:
        return _spec(
            cls.resource_type,
            cls.action,
            cls.resource_id_kwarg,
            cls.zerotrust_properties,
            cls.zerotrust_context,
        )

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        _checked(request, type(self))
        access = request.zerotrust_request
        token = CURRENT_REQUEST.set(access)
        try:
            result = super().dispatch(request, *args, **kwargs)  # type: ignore[misc]
        finally:
            CURRENT_REQUEST.reset(token)
        if inspect.isawaitable(result):
            return _under(access, result)
        return result


async def _under(access: Any, result: Awaitable[Any]) -> Any:
    token = CURRENT_REQUEST.set(access)
    try:
        return await result
    finally:
        CURRENT_REQUEST.reset(token)


def _declared(view: Any) -> tuple[_Spec, object] | None:
    """The view's declaration, and what ``_checked`` will know it by."""
    spec = getattr(view, _SPEC, None)
    if isinstance(spec, _Spec):
        return spec, spec
    cls = getattr(view, "view_class", None)
    if isinstance(cls, type) and issubclass(cls, ZeroTrustRequiredMixin):
        return _class_spec(cls, getattr(view, "view_initkwargs", None) or {}), cls
    return None


def _class_spec(cls: type[ZeroTrustRequiredMixin], initkwargs: Mapping[str, Any]) -> _Spec:
    """The class's declaration as ``as_view(**initkwargs)`` changed it for this route:
    the instance that dispatches has those attributes, so they are what is decided."""
    unsupported = {"zerotrust_properties", "zerotrust_context", "zerotrust_spec"} & set(initkwargs)
    if unsupported:
        raise DjangoConfigError(
            f"zerotrust: as_view() cannot override {sorted(unsupported)}; subclass the view"
        )
    spec = cls.zerotrust_spec()
    if not {"resource_type", "action", "resource_id_kwarg"} & set(initkwargs):
        return spec
    checked = _spec(
        initkwargs.get("resource_type", spec.resource_type),
        initkwargs.get("action", spec.action),
        initkwargs.get("resource_id_kwarg", spec.resource_id),
    )
    return attrs.evolve(checked, properties=spec.properties, context=spec.context)


def _no_route(http: Any) -> None:
    return None  # Django resolves URLs; the gates never consult a route table


def _response(reply: Reply) -> HttpResponse:
    response = HttpResponse(reply.body, status=reply.status)
    for name, value in reply.headers:
        response[name] = value
    return response


class ZeroTrustMiddleware:
    """Decides in ``process_view`` for declared views; releases their JSON on the way out.

    Sync and async capable: under ASGI the response is read and rewritten without
    blocking the event loop (the decision itself runs in Django's thread for sync
    middleware methods).
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        pdp, config, self.debug = load_settings()
        self.gate = Gate(pdp, _no_route, config)
        self.debug_gate = Gate(pdp, _no_route, attrs.evolve(config, expose_reasons=True))
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self._acall(request)
        token = REQUEST_IN_PROGRESS.set(request)
        try:
            response = self.get_response(request)
        finally:
            REQUEST_IN_PROGRESS.reset(token)
        return _private(request, _release(request, _refusal_of(request, response), None))

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        token = REQUEST_IN_PROGRESS.set(request)
        try:
            response = _refusal_of(request, await self.get_response(request))
        finally:
            REQUEST_IN_PROGRESS.reset(token)
        held = getattr(request, _HELD, None)
        if held is None or not response.streaming or not getattr(response, "is_async", False):
            return _private(request, _release(request, response, None))
        limit = held[0][0].config.max_body_bytes
        return _private(request, _release(request, response, await _read_async(response, limit)))

    def _current_gate(self) -> Gate:
        debug = settings.DEBUG if self.debug is None else self.debug
        return self.debug_gate if debug else self.gate

    def process_view(
        self,
        request: HttpRequest,
        view_func: Callable[..., Any],
        view_args: tuple[Any, ...],
        view_kwargs: dict[str, Any],
    ) -> HttpResponse | None:
        gate = self._current_gate()
        setattr(request, _GATE, gate)
        declared = _declared(view_func)
        if declared is None:
            return None
        spec, declaration = declared
        reply = decide(gate, request, spec.target(request, view_kwargs))
        if reply is not None:
            return _response(reply)
        setattr(request, _DECIDED, declaration)
        return None

    def process_exception(self, request: HttpRequest, exception: Exception) -> Any:
        """A refusal raised in the view (the DRF permission, or ``PermissionDenied`` after
        the backend refused a ``has_perm``) gets zerotrust's answer."""
        if isinstance(exception, Refused):
            return _response(exception.reply)
        refused = getattr(request, REFUSED, None)
        if isinstance(exception, PermissionDenied) and isinstance(refused, Reply):
            return _response(refused)
        return None


def _private(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """A response released under an allow is for that subject only: ``private``, so no
    cache (Django's per-site ``UpdateCacheMiddleware``, which keys on the URL and at
    most the Authorization header, or a shared proxy) serves it to anyone undecided."""
    if hasattr(request, "zerotrust_decision"):
        patch_cache_control(response, private=True)
    return response


def _refusal_of(request: HttpRequest, response: HttpResponseBase) -> HttpResponseBase:
    """A 403 answered after the backend refused a ``has_perm`` (a handler that turned
    ``PermissionDenied`` into a page: DRF's) is the refusal's answer: a step-up is a 401."""
    refused = getattr(request, REFUSED, None)
    if response.status_code != 403 or not isinstance(refused, Reply):
        return response
    response.close()
    for name in (_HELD, OBJECT_PENDING):  # what the refused answer would have released
        if hasattr(request, name):
            delattr(request, name)
    return _response(refused)


class Refused(ZeroTrustError, PermissionError):
    """A refusal raised where a response cannot be returned (DRF permissions);
    the middleware answers it with ``reply``, exactly as the WSGI middleware would."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(f"{reply.code} (decision {reply.decision_id})")
        self.reply = reply


def decide(gate: Gate, request: HttpRequest, target: Target) -> Reply | None:
    """Ask the PDP; the refusal, or None with the allow recorded on the (Django) request."""
    http, _ = http_request(request.META)
    # The method Django serves (upper-cased: a "delete" is a DELETE), not the raw one:
    # context.method must be what the view runs as.
    http = attrs.evolve(http, method=request.method or http.method)
    prepared = gate.prepare(http, target, gate.identify(http))
    if isinstance(prepared, Reply):
        return prepared
    prepared = _with_url(prepared, request)
    decision = gate.decide(prepared)
    if isinstance(decision, Reply):
        return decision
    verdict = gate.verdict(decision, prepared)
    if verdict.reply is not None:
        return verdict.reply
    request.zerotrust_decision = decision
    request.zerotrust_request = prepared.access
    if verdict.plan is not None:
        # A conditional request compared with an ETag of the unmasked body (an inner
        # ConditionalGetMiddleware's) would answer 304 to a right guess of a masked field.
        for name in ("HTTP_IF_NONE_MATCH", "HTTP_IF_MATCH"):
            request.META.pop(name, None)
        # A second decision on the same request (DRF's object permission) adds its
        # obligations; it never replaces those of the first.
        # Each object of a list is decided: the same obligations are applied once.
        held = getattr(request, _HELD, [])
        if all(d.obligations != decision.obligations for _, d, _ in held):
            setattr(request, _HELD, [*held, (gate, decision, verdict.plan)])
    return None


def gate_of(request: HttpRequest) -> Gate:
    """The middleware's gate for this request; without the middleware, a refusal to run."""
    gate = getattr(request, _GATE, None)
    if not isinstance(gate, Gate):
        raise DjangoConfigError(
            "zerotrust: add 'zerotrust.web.django.ZeroTrustMiddleware' to settings.MIDDLEWARE"
        )
    return gate


def _with_url(prepared: Prepared, request: HttpRequest) -> Prepared:
    """The URL pattern's name and route in the logged ``extra.http``."""
    match = request.resolver_match
    if match is None:
        return prepared
    logged = {**prepared.extra.get("http", {}), "url_name": match.view_name}
    return attrs.evolve(prepared, extra={**prepared.extra, "http": logged})


def _release(
    request: HttpRequest, response: HttpResponseBase, streamed: tuple[bytes, str | None] | None
) -> HttpResponseBase:
    """Apply the allow's obligations to the JSON body, or withhold it."""
    if getattr(request, OBJECT_PENDING, False) and response.status_code not in _NO_DATA:
        # DRF's has_permission left the decision to has_object_permission (or to the
        # ZeroTrustFilter of a list), which the view never called: nothing was decided for
        # what it answered. A 404 (no object) or a refusal (a permission after ours) is
        # no data.
        response.close()
        raise DjangoConfigError(
            "zerotrust: the DRF view answered without checking object permissions "
            "(use get_object() or call check_object_permissions; a list: filter_queryset)"
        )
    held: list[tuple[Gate, Decision, ObligationPlan]] | None = getattr(request, _HELD, None)
    if not held:
        return response
    delattr(request, _HELD)
    gate, decision, _ = held[0]
    if streamed is not None:
        body, failed = streamed
    elif response.streaming:
        if getattr(response, "is_async", False):
            body, failed = b"", "an async streamed response under WSGI"
        else:
            body, failed = _read(response, gate.config.max_body_bytes)
    else:
        body = response.content
        too_big = len(body) > gate.config.max_body_bytes
        failed = "response larger than max_body_bytes" if too_big else None
    failed = failed or delegated_body(list(response.items()))
    original = body
    for step_gate, step_decision, plan in held:
        if failed is not None or not body:  # nothing to mask in an empty body (a 204)
            break
        rewritten = rewrite_json(response.status_code, list(response.items()), body, plan)
        if isinstance(rewritten, str):
            failed, gate, decision = rewritten, step_gate, step_decision
        else:
            body = rewritten
    if failed is not None:
        response.close()
        return _response(gate.failed_obligation(decision, failed))
    if body != original:
        for name in BODY_DIGESTS:  # of the unmasked body: an oracle for what was masked
            if response.has_header(name):
                del response[name]
    if response.streaming:
        # An async stream stays async: Django warns when ASGI serves a sync iterator.
        response.streaming_content = [body] if streamed is None else _once(body)
    else:
        response.content = body
    if response.has_header("content-length"):
        response["Content-Length"] = str(len(body))
    return response


def _read(response: HttpResponseBase, limit: int) -> tuple[bytes, str | None]:
    chunks: list[bytes] = []
    size = 0
    source: Iterable[bytes] = response.streaming_content
    for chunk in source:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"", "response larger than max_body_bytes"
    return b"".join(chunks), None


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


async def _read_async(response: HttpResponseBase, limit: int) -> tuple[bytes, str | None]:
    chunks: list[bytes] = []
    size = 0
    source: AsyncIterator[bytes] = response.streaming_content
    async for chunk in source:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"", "response larger than max_body_bytes"
    return b"".join(chunks), None
