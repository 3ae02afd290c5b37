"""Starlette: ``request.user`` / ``request.auth`` from the verified bearer token.

::

    zt = ZeroTrust(pdp, config=config)            # zerotrust.web.fastapi
    app = Starlette(routes=[Route("/customers/{id}", zt.guard("customer_record", "read",
                                                                resource_id="id")(read))],
                    middleware=[Middleware(AuthenticationMiddleware, backend=ZeroTrustBackend(zt))])
    zt.install(app)

The backend only says who is calling (as Starlette's ``AuthenticationMiddleware``
expects); whether they may is the guard's decision. A missing or invalid token is an
unauthenticated user here, not an error: the guard answers it with the 401 challenge.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.authentication import AuthCredentials, AuthenticationBackend, BaseUser
from starlette.requests import HTTPConnection

from zerotrust.web._asgi import http_request
from zerotrust.web.errors import WebConfigError
from zerotrust.web.fastapi import ZeroTrust, identify

__all__ = ["VerifiedSubject", "ZeroTrustBackend"]


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
            raise WebConfigError("ZeroTrustBackend takes the app's zerotrust.web.fastapi.ZeroTrust")
        self._gate = zt.gate

    async def authenticate(self, conn: HTTPConnection) -> tuple[AuthCredentials, BaseUser] | None:
        identity = await identify(self._gate, http_request(conn.scope))
        if identity.subject is None:
            return None
        return AuthCredentials(["authenticated"]), VerifiedSubject(
            identity.subject, identity.device
        )
