"""Builds the library's IdentityResolver from the server's ``identity`` configuration.

The only server module that imports :mod:`zerotrust.identity`: the configuration is a
plain description, and this is where it becomes verifiers. Every problem the library
finds (an unknown algorithm, an unreadable JWKS file, plain http to a remote host) is
collected into one :class:`ServerConfigError`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from zerotrust.identity import (
    DeviceVerifier,
    IdentityConfigError,
    IdentityResolver,
    Issuer,
    JWTVerifier,
    KeySource,
    RemoteJWKS,
    StaticKeys,
)
from zerotrust.server.config import DeviceConfig, IdentityConfig, ServerConfigError

__all__ = ["build_identity"]

_T = TypeVar("_T")


def build_identity(config: IdentityConfig) -> IdentityResolver:
    """The resolver ``zerotrust serve`` passes to ``PolicyDecisionPoint(identity=...)``.

    Does no network I/O: a ``jwks_url`` is fetched on the first token that needs it.
    Raises :class:`ServerConfigError` listing every problem.
    """
    problems: list[str] = []
    issuer = _issuer(config, "identity", problems)
    verifier = None
    if issuer is not None:
        verifier = _attempt(
            lambda: JWTVerifier(
                issuers=issuer,
                audiences=config.audiences,
                required_claims=_any(config.required_claims),
                leeway=config.leeway,
                typ=config.typ,
                subject_type=config.subject_type,
                roles_from=config.roles_from,
                groups_from=config.groups_from,
            ),
            "identity",
            problems,
        )
    device = None if config.device is None else _device(config.device, problems)
    if problems:
        raise ServerConfigError(problems)
    return IdentityResolver(jwt=verifier, device=device)


def _device(config: DeviceConfig, problems: list[str]) -> DeviceVerifier | None:
    issuer = _issuer(config, "identity.device", problems)
    if issuer is None:
        return None
    return _attempt(
        lambda: DeviceVerifier(
            issuer,
            max_age=config.max_age,
            audiences=config.audiences,
            typ=config.typ,
            subject_claim=config.subject_claim,
            leeway=config.leeway,
        ),
        "identity.device",
        problems,
    )


def _issuer(
    config: IdentityConfig | DeviceConfig, where: str, problems: list[str]
) -> Issuer | None:
    keys = _attempt(lambda: _keys(config), where, problems)
    if keys is None:
        return None
    return _attempt(lambda: Issuer(config.issuer, keys, config.algorithms), where, problems)


def _any(value: Any) -> Any:
    """mypy reads attrs' ``converter=frozenset`` as an unsolvable type variable."""
    return value


def _keys(config: IdentityConfig | DeviceConfig) -> KeySource:
    if config.jwks_url is not None:
        return RemoteJWKS(config.jwks_url)
    if config.jwks_file is None:  # the configuration's own check makes this unreachable
        raise IdentityConfigError("no key source configured")
    return StaticKeys.from_jwks_file(config.jwks_file)


def _attempt(build: Callable[[], _T], where: str, problems: list[str]) -> _T | None:
    try:
        return build()
    except IdentityConfigError as exc:
        problems.append(f"{where}: {_message(exc)}")
        return None


def _message(exc: Any) -> str:
    # "cannot read JWKS file ..." says which; its cause says why (missing, not JSON, ...).
    cause = exc.__cause__
    if cause is None or isinstance(cause, IdentityConfigError):
        return str(exc)
    return f"{exc} ({type(cause).__name__}: {cause})"
