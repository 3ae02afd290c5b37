"""From an HTTP call to the parts of an access request, shared by the ASGI and WSGI middleware.

Nothing here imports a web framework: :class:`HttpRequest` is a neutral view that each
adapter fills from its own scope or environ. Client-supplied headers are believed only
where configured: ``X-Forwarded-For`` and the country header count only when the
immediate peer is one of ``trusted_proxies`` (none by default; addresses are compared
in the canonical form of :mod:`zerotrust.web.addresses`).
"""

from __future__ import annotations

import datetime
import inspect
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from zerotrust.web.addresses import IPNetwork, client_ip, peer_is_trusted, trusted_networks
from zerotrust.web.errors import WebConfigError
from zerotrust.web.obligations import Tokenizer

if TYPE_CHECKING:
    from zerotrust.identity import DeviceVerifier, JWTVerifier

__all__ = [
    "WEBSOCKET",
    "HttpRequest",
    "IPNetwork",
    "Resolver",
    "RouteTable",
    "Target",
    "WebConfig",
    "as_resolver",
    "checked_target",
    "client_ip",
    "peer_is_trusted",
    "routable_method",
]


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@attrs.frozen
class HttpRequest:
    """The parts of an HTTP request the enforcement point reads.

    ``path`` is the path the application routes on: below its mount point (the ASGI
    ``root_path``, the WSGI ``SCRIPT_NAME``). ``headers`` has lower-cased names; a
    repeated header is joined with ``", "``. ``peer`` is the address of the immediate
    TCP peer (which may be a proxy). ``websocket`` marks a WebSocket handshake, which
    is an HTTP ``GET`` (RFC 6455 section 4.1); route tables match it with
    ``WEBSOCKET`` keys only.
    """

    method: str
    path: str
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)
    peer: str | None = None
    query_string: str = ""
    path_params: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)
    websocket: bool = False

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    @property
    def route_method(self) -> str:
        """The method route tables match: ``WEBSOCKET`` for a handshake, else the method."""
        return WEBSOCKET if self.websocket else self.method


@attrs.frozen
class Target:
    """What a request is about: the resource and action the PDP is asked about.

    ``route`` (e.g. ``"GET /customers/{id}"``) goes to the decision log. ``context`` adds
    request context the application knows (e.g. ``records`` for an export); the
    HTTP-derived context keys (ip, country, ...) always win over it.
    """

    resource_type: str
    action: str
    resource_id: str | None = None
    resource_properties: Mapping[str, Any] = attrs.field(
        factory=dict, converter=_frozen_map, hash=False
    )
    context: Mapping[str, Any] = attrs.field(factory=dict, converter=_frozen_map, hash=False)
    route: str | None = None


Resolver = Callable[[HttpRequest], "Target | Awaitable[Target | None] | None"]
"""Maps a request to its :class:`Target`; ``None`` means unmatched. May be async (ASGI)."""

PropertiesLookup = Callable[
    [str, "str | None", HttpRequest],
    "Mapping[str, Any] | Awaitable[Mapping[str, Any] | None] | None",
]

_PARAM = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)(:path)?\}")
# An RFC 9110 method token, or * for any method (WebSocket handshakes included).
_METHOD = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
WEBSOCKET = "WEBSOCKET"


@attrs.frozen
class _Route:
    template: str
    method: str
    pattern: re.Pattern[str]
    resource_type: str
    action: str
    id_param: str


def _compile_route(key: str, value: Any) -> _Route:
    method, sep, path = key.strip().partition(" ")
    path = path.strip()
    if not sep or not _METHOD.fullmatch(method) or not path.startswith("/"):
        raise WebConfigError(
            f"route {key!r} must look like 'GET /customers/{{id}}' (or 'WEBSOCKET /path')"
        )
    if not isinstance(value, tuple | list) or len(value) not in (2, 3):
        raise WebConfigError(f"route {key!r}: value must be (resource_type, action[, id_param])")
    if not all(isinstance(v, str) and v for v in value):
        raise WebConfigError(f"route {key!r}: resource type, action and id param are names")
    regex, pos = [], 0
    for m in _PARAM.finditer(path):
        regex.append(re.escape(path[pos : m.start()]))
        regex.append(f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})")
        pos = m.end()
    regex.append(re.escape(path[pos:]))
    try:
        pattern = re.compile("".join(regex))
    except re.error as exc:
        raise WebConfigError(f"route {key!r}: {exc}") from exc
    id_param = value[2] if len(value) == 3 else "id"
    return _Route(f"{method.upper()} {path}", method.upper(), pattern, value[0], value[1], id_param)


def _compile_routes(table: Mapping[str, Any]) -> tuple[_Route, ...]:
    if not isinstance(table, Mapping) or not table:
        raise WebConfigError("a route table maps 'METHOD /path' to (resource_type, action)")
    return tuple(_compile_route(k, v) for k, v in table.items())


@attrs.frozen
class RouteTable:
    """A resolver from ``{"GET /customers/{id}": ("customer_record", "read")}``.

    ``{name}`` matches one path segment, ``{name:path}`` the rest of the path. The
    parameter ``id`` (or the third tuple item) becomes ``resource.id``; the others go
    to ``context.path_params``, never to resource properties, which a URL must not
    choose. ``properties(type, id, request)`` looks the resource's attributes up (sync,
    or async under ASGI); it returns ``None`` for an unknown resource. First match wins;
    ``HEAD`` matches ``GET`` routes. A WebSocket handshake matches only ``WEBSOCKET``
    and ``*`` routes (``"WEBSOCKET /customers/{id}/live"``), never ``GET`` ones: a
    stream is not one response, so it gets an action of its own.
    """

    table: Mapping[str, Any] = attrs.field(converter=_frozen_map)
    properties: PropertiesLookup | None = None
    _routes: tuple[_Route, ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_routes", _compile_routes(self.table))

    def match(self, http: HttpRequest) -> Target | None:
        """The target without looking properties up."""
        method = http.route_method
        if method == WEBSOCKET and not http.websocket:
            return None  # an HTTP request whose method is spelt WEBSOCKET is no handshake
        alias = "GET" if method == "HEAD" else method
        for route in self._routes:
            if route.method not in (method, alias, "*"):
                continue
            m = route.pattern.fullmatch(http.path)
            if m is None:
                continue
            params = m.groupdict()
            rid = params.pop(route.id_param, None)
            return Target(
                resource_type=route.resource_type,
                action=route.action,
                resource_id=rid,
                context={"path_params": params} if params else {},
                route=route.template,
            )
        return None

    def __call__(self, http: HttpRequest) -> Target | Awaitable[Target | None] | None:
        target = self.match(http)
        if target is None or self.properties is None:
            return target
        found = self.properties(target.resource_type, target.resource_id, http)
        if inspect.isawaitable(found):
            return _with_properties_async(target, found)
        return with_properties(target, found)


async def _with_properties_async(
    target: Target, found: Awaitable[Mapping[str, Any] | None]
) -> Target:
    return with_properties(target, await found)


def with_properties(target: Target, found: object) -> Target:
    if found is None:
        return target
    if not isinstance(found, Mapping):
        raise WebConfigError(
            f"the properties lookup returned a {type(found).__name__}, not a mapping or None"
        )
    return attrs.evolve(target, resource_properties=found)


def _networks(value: Any) -> tuple[IPNetwork, ...]:
    try:
        return trusted_networks(value)
    except ValueError as exc:
        raise WebConfigError(f"trusted_proxies: {exc}") from exc


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _lower(value: str) -> str:
    return value.lower()


def _optional_header(value: str | None) -> str | None:
    return None if value is None else value.lower()


@attrs.frozen
class WebConfig:
    """How the middleware authenticates, what it believes and how it answers.

    Exactly one of ``jwt`` (a :class:`~zerotrust.identity.JWTVerifier` for
    ``Authorization: Bearer``) or ``identify`` (your own ``HttpRequest -> subject``
    function, raising :class:`~zerotrust.errors.IdentityError` to refuse) is required.
    ``device`` verifies the attestation in ``device_header``. ``unmatched="pass"`` lets
    requests no route matches through unchecked (default: deny). With
    ``apply_obligations`` the middleware rewrites JSON responses itself; types in
    ``handled_obligations`` are left to the application. A WebSocket's messages cannot
    be rewritten, so an allowed handshake whose obligations are not all in
    ``handled_obligations`` or ``websocket_handled_obligations`` (the types your
    WebSocket handlers apply to what they send) is refused. ``expose_reasons`` puts the
    matched rules into refusals (off: clients learn nothing about the policies).
    ``log_path`` says what ``extra.http.path`` in the decision log holds: ``"route"``
    (the default) the matched route's path template (``/customers/{id}``), so no raw
    path parameter lands in ``extra``, and nothing for an unmatched request;
    ``"raw"`` the path as requested.
    """

    jwt: JWTVerifier | None = None
    identify: Callable[[HttpRequest], Any] | None = None
    device: DeviceVerifier | None = None
    device_header: str = attrs.field(default="x-device-attestation", converter=_lower)
    trusted_proxies: tuple[IPNetwork, ...] = attrs.field(default=(), converter=_networks)
    country_header: str | None = attrs.field(default=None, converter=_optional_header)
    unmatched: Literal["deny", "pass"] = "deny"
    apply_obligations: bool = True
    tokenizer: Tokenizer | None = None
    handled_obligations: frozenset[str] = attrs.field(default=(), converter=frozenset)
    websocket_handled_obligations: frozenset[str] = attrs.field(default=(), converter=frozenset)
    expose_reasons: bool = False
    realm: str | None = None
    problem_type_base: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    log_path: Literal["route", "raw"] = "route"
    clock: Callable[[], datetime.datetime] = attrs.field(default=_utc_now, eq=False)

    def __attrs_post_init__(self) -> None:
        if (self.jwt is None) == (self.identify is None):
            raise WebConfigError("configure exactly one of jwt= (a JWTVerifier) or identify=")
        if self.unmatched not in ("deny", "pass"):
            raise WebConfigError('unmatched must be "deny" or "pass"')
        if self.log_path not in ("route", "raw"):
            raise WebConfigError('log_path must be "route" or "raw"')
        if self.max_body_bytes < 0:
            raise WebConfigError("max_body_bytes must not be negative")
        if self.tokenizer is not None and not isinstance(self.tokenizer, Tokenizer):
            raise WebConfigError("tokenizer must be a zerotrust.web.Tokenizer")


def as_resolver(resolve: Mapping[str, Any] | Resolver) -> Resolver:
    """A route table mapping becomes a :class:`RouteTable`; a callable is used as it is."""
    if isinstance(resolve, Mapping):
        return RouteTable(resolve)
    if callable(resolve):
        return resolve
    raise WebConfigError("resolve must be a route table mapping or a function")


def checked_target(found: object) -> Target | None:
    """A resolver's answer, or :class:`WebConfigError` if it is neither a Target nor None.

    Anything else (a dict, ``False``, a coroutine still to await) would otherwise be
    read as a target or as "unmatched": both are guesses about what the resolver meant.
    """
    if found is None or isinstance(found, Target):
        return found
    if inspect.iscoroutine(found):
        found.close()  # never run, and no "was never awaited" warning later
    raise WebConfigError(f"a resolver must return a Target or None, not a {type(found).__name__}")


def routable_method(method: str) -> bool:
    """Whether every framework reads ``method`` as the same method, so a route may match it.

    Methods are case-sensitive (RFC 9110 section 9.1) and every registered one is upper
    case. One in any other case is read differently by each framework: Starlette routes
    ``get`` to no handler, while Werkzeug and Django upper-case it and serve ``GET``. The
    middleware therefore matches such a request with no route, and never lets it pass
    undecided (``unmatched="pass"``) to an app that may serve it as ``GET``.
    """
    return method == method.upper()
