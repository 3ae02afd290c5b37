"""JWTVerifier: an access or ID token in, a verified :class:`~zerotrust.request.Subject` out.

Configured once, immutable, thread-safe. It fails closed: every problem, including any
exception from PyJWT or cryptography, becomes an :class:`~zerotrust.errors.IdentityError`
subclass whose message never contains the token, a claim value or a key.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from zerotrust.identity import _token
from zerotrust.identity._token import Clock, Issuer, VerifiedJWS
from zerotrust.identity.errors import IdentityConfigError, InvalidClaimError
from zerotrust.request import Subject

__all__ = ["ClaimPath", "Clock", "JWTVerifier"]

ClaimPath = str | tuple[str, ...]
"""A claim path: ``"realm_access.roles"`` splits on dots; a tuple is taken literally, which
is how a claim whose name has dots is reached: ``roles_from=[("https://example.com/roles",)]``.
"""


DEFAULT_MAX_TOKEN_BYTES = 32 * 1024


def _paths(value: ClaimPath | Iterable[ClaimPath]) -> tuple[tuple[str, ...], ...]:
    items = (value,) if isinstance(value, str) else value
    out: list[tuple[str, ...]] = []
    for item in items:
        path = tuple(item.split(".")) if isinstance(item, str) else tuple(item)
        if not path or not all(isinstance(p, str) and p for p in path):
            raise IdentityConfigError("a claim path must be non-empty names")
        out.append(path)
    return tuple(out)


@attrs.frozen
class JWTVerifier:
    """Verifies JWTs from trusted issuers for this service's audiences.

    ``exp``, ``iss``, ``sub`` and ``aud`` are always required; ``required_claims`` adds
    more. ``leeway`` (default 30 s, at most 300 s) absorbs clock skew. ``typ``, when set
    (e.g. ``"at+jwt"``, RFC 9068), must match the header, so an ID token cannot be used
    as an access token. ``roles_from`` / ``groups_from`` name the claims that become
    ``properties.roles`` / ``properties.groups``.
    """

    issuers: Mapping[str, Issuer] = attrs.field(converter=_token.issuers_by_name, hash=False)
    audiences: frozenset[str] = attrs.field(converter=_token.string_set)
    required_claims: frozenset[str] = attrs.field(default=(), converter=frozenset)
    leeway: float = 30.0
    typ: str | None = None
    subject_type: str = "user"
    roles_from: tuple[tuple[str, ...], ...] = attrs.field(default=("roles",), converter=_paths)
    groups_from: tuple[tuple[str, ...], ...] = attrs.field(default=("groups",), converter=_paths)
    max_token_bytes: int = DEFAULT_MAX_TOKEN_BYTES
    clock: Clock = attrs.field(default=_token.utc_now, eq=False)

    def __attrs_post_init__(self) -> None:
        if not self.audiences or not all(isinstance(a, str) and a for a in self.audiences):
            raise IdentityConfigError("at least one non-empty audience is required")
        _token.check_leeway(self.leeway)
        if not self.subject_type:
            raise IdentityConfigError("subject_type must not be empty")

    def verify(self, token: str, *, now: datetime.datetime | None = None) -> Subject:
        """The verified subject: ``id`` = ``sub``, ``properties`` = claims, normalised."""
        claims = self.verify_claims(token, now=now)
        return _token.guard(lambda: self._subject(claims, _token.timestamp(now, self.clock)))

    def verify_claims(self, token: str, *, now: datetime.datetime | None = None) -> dict[str, Any]:
        """The verified claim set, before mapping to a subject."""
        return _token.guard(lambda: self._claims(token, _token.timestamp(now, self.clock)))

    def verify_signature(self, token: str) -> VerifiedJWS:
        """Only the signature layer: header, allow-list and key checks, no claim checks.

        Never use the payload of the result as identity; it is here for conformance
        tests and for callers verifying non-JWT JWS payloads.
        """
        return _token.guard(lambda: self._signature(token))

    def would_block(self, token: str) -> bool:
        """Whether verifying this token might fetch keys over the network now."""
        try:
            compact = _token.split(token, self.max_token_bytes)
            kid = compact.header.get("kid")
            issuer = _token.route(compact, self.issuers)
            return issuer.keys.would_block(kid if isinstance(kid, str) else None)
        except Exception:
            return False

    def _signature(self, token: str) -> VerifiedJWS:
        compact = _token.split(token, self.max_token_bytes)
        return _token.verify_signature(compact, _token.route(compact, self.issuers))

    def _claims(self, token: str, now: float) -> dict[str, Any]:
        jws = self._signature(token)
        claims = _token.loads_object(jws.payload, "payload")
        _token.check_typ(jws.header, self.typ)
        _token.check_claims(
            claims,
            issuer=jws.issuer,
            audiences=self.audiences,
            required=self.required_claims | {"exp", "iss", "sub"},
            leeway=self.leeway,
            now=now,
        )
        return claims

    def _subject(self, claims: dict[str, Any], now: float) -> Subject:
        sub = claims["sub"]
        if not sub:
            raise InvalidClaimError("claim 'sub' must not be empty")
        props = dict(claims)
        props["roles"] = _collect(claims, self.roles_from)
        props["groups"] = _collect(claims, self.groups_from)
        props["scopes"] = _scopes(claims)
        props["amr"] = _string_list(claims.get("amr"), "amr")
        acr = claims.get("acr")
        if acr is not None and not isinstance(acr, str):
            raise InvalidClaimError("claim 'acr' must be a string")
        props["acr"] = acr
        auth_time = _token.numeric(claims, "auth_time")
        if auth_time is not None and auth_time > now + self.leeway:
            raise InvalidClaimError("claim 'auth_time' is in the future")
        props["auth_time"] = None if auth_time is None else claims["auth_time"]
        return Subject(id=sub, type=self.subject_type, properties=props)


def _collect(claims: Mapping[str, Any], paths: tuple[tuple[str, ...], ...]) -> list[str]:
    out: list[str] = []
    for path in paths:
        value: Any = claims
        for name in path:
            value = value.get(name) if isinstance(value, Mapping) else None
        for item in _string_list(value, ".".join(path)):
            if item not in out:
                out.append(item)
    return out


def _string_list(value: Any, name: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise InvalidClaimError(f"claim {name!r} must be a string or an array of strings")


def _scopes(claims: Mapping[str, Any]) -> list[str]:
    """``scope`` (RFC 9068: space-separated) and ``scp`` (Entra: string, Okta: array)."""
    out: list[str] = []
    for name in ("scope", "scp"):
        value = claims.get(name)
        items = value.split() if isinstance(value, str) else _string_list(value, name)
        out.extend(i for i in items if i not in out)
    return out
