"""IdentityResolver: a raw request with a token in, the same request with verified parts out.

It runs before :meth:`AccessRequest.from_mapping`, so policies only ever see a subject
the identity provider vouched for and a device the MDM vouched for. Anything the caller
says about the device without an attestation survives only under ``device.unverified``.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Mapping
from typing import Any

import attrs

from zerotrust.errors import RequestError
from zerotrust.identity.device import DeviceVerifier, unverified_device
from zerotrust.identity.errors import (
    IdentityConfigError,
    MissingTokenError,
    NotConfiguredError,
)
from zerotrust.identity.jwt import JWTVerifier

__all__ = ["IdentityResolver", "verify_request"]


def _optional(kind: type) -> Any:
    def check(instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is not None and not isinstance(value, kind):
            raise IdentityConfigError(f"{attribute.name} must be a {kind.__name__} or None")

    return check


@attrs.frozen
class IdentityResolver:
    """Turns ``subject: {"token": ...}`` and ``device: {"attestation": ...}`` into verified data.

    With ``jwt`` set, every request must carry a subject token: a caller-asserted
    ``{type, id}`` subject is refused (:class:`MissingTokenError`). Raises
    :class:`RequestError` for a malformed shape and an ``IdentityError`` subclass when
    verification fails; never returns a partly verified request.
    """

    jwt: JWTVerifier | None = attrs.field(default=None, validator=_optional(JWTVerifier))
    device: DeviceVerifier | None = attrs.field(default=None, validator=_optional(DeviceVerifier))

    def resolve(
        self, request: Mapping[str, Any], *, now: datetime.datetime | None = None
    ) -> dict[str, Any]:
        """The request as a plain mapping with ``subject`` and ``device`` replaced."""
        if not isinstance(request, Mapping):
            raise RequestError("request", "must be an object")
        out = dict(request)
        subject_id = self._subject(request.get("subject"), out, now)
        out["device"] = self._device(request.get("device"), subject_id, now)
        return out

    async def resolve_async(
        self, request: Mapping[str, Any], *, now: datetime.datetime | None = None
    ) -> dict[str, Any]:
        """As :meth:`resolve`; runs in a worker thread only when a JWKS fetch may be due."""
        if self.would_block(request):
            return await asyncio.to_thread(self.resolve, request, now=now)
        return self.resolve(request, now=now)

    def would_block(self, request: Any) -> bool:
        """Whether resolving this request might fetch keys over the network now."""
        if not isinstance(request, Mapping):
            return False
        subject, device = request.get("subject"), request.get("device")
        token = subject.get("token") if isinstance(subject, Mapping) else None
        attestation = device.get("attestation") if isinstance(device, Mapping) else None
        return bool(
            (self.jwt is not None and isinstance(token, str) and self.jwt.would_block(token))
            or (
                self.device is not None
                and isinstance(attestation, str)
                and self.device.would_block(attestation)
            )
        )

    def _subject(
        self, subject: Any, out: dict[str, Any], now: datetime.datetime | None
    ) -> str | None:
        if isinstance(subject, Mapping) and "token" in subject:
            if self.jwt is None:
                raise NotConfiguredError("a subject token was given but no verifier is configured")
            if set(subject) != {"token"}:
                raise RequestError("subject", "a subject with a token must carry nothing else")
            token = subject["token"]
            if not isinstance(token, str):
                raise RequestError("subject.token", "must be a string")
            verified = self.jwt.verify(token, now=now)
            out["subject"] = verified.to_dict()
            return verified.id
        if self.jwt is not None:
            raise MissingTokenError("a verified subject is required: give subject.token")
        subject_id = subject.get("id") if isinstance(subject, Mapping) else None
        return subject_id if isinstance(subject_id, str) else None

    def _device(
        self, device: Any, subject_id: str | None, now: datetime.datetime | None
    ) -> dict[str, Any]:
        if device is None:
            return unverified_device()
        if not isinstance(device, Mapping):
            raise RequestError("device", "must be an object")
        extra = {k: v for k, v in device.items() if k != "attestation"}
        if "attestation" in device:
            if self.device is None:
                raise NotConfiguredError("a device attestation was given but no verifier is set")
            attestation = device["attestation"]
            if not isinstance(attestation, str):
                raise RequestError("device.attestation", "must be a string")
            result = self.device.verify(attestation, subject_id=subject_id, now=now)
        else:
            result = unverified_device()
        if extra:
            result["unverified"] = extra
        return result


def verify_request(
    request: Mapping[str, Any],
    *,
    jwt_verifier: JWTVerifier | None = None,
    device_verifier: DeviceVerifier | None = None,
    now: datetime.datetime | None = None,
) -> dict[str, Any]:
    """One-shot :meth:`IdentityResolver.resolve`."""
    resolver = IdentityResolver(jwt=jwt_verifier, device=device_verifier)
    return resolver.resolve(request, now=now)
