"""From an HTTP call to the parts of an access request, shared by the ASGI and WSGI middleware.

Nothing here imports a web framework: :class:`HttpRequest` is a neutral view that each
adapter fills from its own scope or environ. Client-supplied headers are believed only
where configured: ``X-Forwarded-For`` and the country header count only when the
immediate peer is one of ``trusted_proxies`` (none by default).
"""

from __future__ import annotations

import datetime
import inspect
import ipaddress
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

import attrs

from zerotrust.web.errors import WebConfigError
from zerotrust.web.obligations import Tokenizer

if TYPE_CHECKING:
    from zerotrust.identity import DeviceVerifier, JWTVerifier

__all__ = [
    "HttpRequest",
    "IPNetwork",
    "Resolver",
    "RouteTable",
    "Target",
    "WebConfig",
    "client_ip",
    "peer_is_trusted",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _frozen_map(value: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return dict(value or {})


@attrs.frozen
class HttpRequest:
    """The parts of an HTTP request the enforcement point reads.

    ``headers`` has lower-cased names; a repeated header is joined with ``", "``.
    ``peer`` is the address of the immediate TCP peer (which may be a proxy).
    """

    method: str
    path: str
    headers: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)
    peer: str | None = None
    query_string: str = ""
    path_params: Mapping[str, str] = attrs.field(factory=dict, converter=_frozen_map, hash=False)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())


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
    if not sep or not method or not path.startswith("/"):
        raise WebConfigError(f"route {key!r} must look like 'GET /customers/{{id}}'")
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
    ``HEAD`` matches ``GET`` routes.
    """

    table: Mapping[str, Any] = attrs.field(converter=_frozen_map)
    properties: PropertiesLookup | None = None
    _routes: tuple[_Route, ...] = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_routes", _compile_routes(self.table))

    def match(self, http: HttpRequest) -> Target | None:
        """The target without looking properties up."""
        method = "GET" if http.method == "HEAD" else http.method
        for route in self._routes:
            if route.method not in (method, http.method, "*"):
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
        return attrs.evolve(target, resource_properties=found or {})


async def _with_properties_async(
    target: Target, found: Awaitable[Mapping[str, Any] | None]
) -> Target:
    return attrs.evolve(target, resource_properties=(await found) or {})


def _networks(value: Any) -> tuple[IPNetwork, ...]:
    items = [value] if isinstance(value, str) else list(value or ())
    try:
        return tuple(ipaddress.ip_network(v, strict=False) for v in items)
    except ValueError as exc:
        raise WebConfigError(f"trusted_proxies: {exc}") from exc


def _parse_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[2001:db8::1]:443"
        text = text[1 : text.index("]")]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def peer_is_trusted(peer: str | None, trusted: tuple[IPNetwork, ...]) -> bool:
    """Whether the immediate peer is one of the trusted proxies."""
    address = _parse_ip(peer) if peer and trusted else None
    return address is not None and any(address in net for net in trusted)


def client_ip(
    peer: str | None, forwarded_for: str | None, trusted: tuple[IPNetwork, ...]
) -> str | None:
    """The client address: the peer, unless the peer is a trusted proxy.

    Behind trusted proxies, ``X-Forwarded-For`` is read right to left and the first
    address that is not a trusted proxy is the client. A malformed entry gives
    ``None`` (unknown), never the proxy's own, possibly internal, address.
    """
    address = _parse_ip(peer) if peer else None
    if address is None:
        return None
    if not any(address in net for net in trusted):
        return str(address)
    hops = [h for h in (forwarded_for or "").split(",") if h.strip()]
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            return None
        if not any(address in net for net in trusted):
            return str(address)
    return str(address)


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
    ``handled_obligations`` are left to the application. ``expose_reasons`` puts the
    matched rules into refusals (off: clients learn nothing about the policies).
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
    expose_reasons: bool = False
    realm: str | None = None
    problem_type_base: str | None = None
    max_body_bytes: int = 8 * 1024 * 1024
    clock: Callable[[], datetime.datetime] = attrs.field(default=_utc_now, eq=False)

    def __attrs_post_init__(self) -> None:
        if (self.jwt is None) == (self.identify is None):
            raise WebConfigError("configure exactly one of jwt= (a JWTVerifier) or identify=")
        if self.unmatched not in ("deny", "pass"):
            raise WebConfigError('unmatched must be "deny" or "pass"')
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
