"""DeviceVerifier: a signed device posture attestation in, the ``device`` attributes out.

An attestation is a JWT from an MDM or EDR service (its own issuer and keys) stating the
posture of one device for one user. Only verified, fresh attestations produce
``managed``/``compliant`` true: anything else is ``verified: false`` or ``stale: true``
with every posture flag false, so a policy that forgets to check still fails closed.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from zerotrust.identity import _token
from zerotrust.identity._token import Clock, Issuer
from zerotrust.identity.errors import (
    IdentityConfigError,
    InvalidClaimError,
    MissingClaimError,
    StaleAttestationError,
    SubjectMismatchError,
)

__all__ = ["POSTURE_FLAGS", "DeviceVerifier", "unverified_device"]

POSTURE_FLAGS = ("managed", "compliant", "disk_encrypted", "edr_running")
"""Boolean posture claims; absent means false, and they are forced false unless fresh."""
_POSTURE_STRINGS = ("os", "os_version")
OnFailure = Literal["reject", "mark"]


def unverified_device() -> dict[str, Any]:
    """The device of a request without a (usable) attestation: nothing is vouched for."""
    return {"verified": False, "stale": False, **dict.fromkeys(POSTURE_FLAGS, False)}


@attrs.frozen
class DeviceVerifier:
    """Verifies device attestation JWTs (format in docs/identity.md).

    ``max_age`` bounds ``now - iat``. A too-old attestation is refused
    (``on_stale="reject"``) or returned with ``stale: true`` and every posture flag false
    (``"mark"``). One bound to another user (``subject_claim``) is refused or returned as
    unverified (``on_subject_mismatch``). ``audiences``, when given, must match ``aud``.
    """

    issuer: Issuer
    max_age: float = 3600.0
    audiences: frozenset[str] = attrs.field(default=(), converter=_token.string_set)
    typ: str | None = None
    subject_claim: str = "user_sub"
    on_stale: OnFailure = "reject"
    on_subject_mismatch: OnFailure = "reject"
    leeway: float = 30.0
    max_token_bytes: int = 16 * 1024
    clock: Clock = attrs.field(default=_token.utc_now, eq=False)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.issuer, Issuer):
            raise IdentityConfigError("DeviceVerifier.issuer must be an Issuer")
        if not self.max_age > 0:
            raise IdentityConfigError("max_age must be positive")
        if self.on_stale not in ("reject", "mark"):
            raise IdentityConfigError('on_stale must be "reject" or "mark"')
        if self.on_subject_mismatch not in ("reject", "mark"):
            raise IdentityConfigError('on_subject_mismatch must be "reject" or "mark"')
        if not self.subject_claim:
            raise IdentityConfigError("subject_claim must not be empty")
        _token.check_leeway(self.leeway)

    def verify(
        self, token: str, *, subject_id: str | None, now: datetime.datetime | None = None
    ) -> dict[str, Any]:
        """The ``device`` mapping for a request whose verified subject is ``subject_id``.

        ``subject_id`` is required by keyword so that skipping the binding check (None)
        is a visible decision, made only when the request has no subject id at all.
        """
        return _token.guard(
            lambda: self._verify(token, subject_id, _token.timestamp(now, self.clock))
        )

    def would_block(self, token: str) -> bool:
        """Whether verifying this attestation might fetch keys over the network now."""
        try:
            kid = _token.split(token, self.max_token_bytes).header.get("kid")
            return self.issuer.keys.would_block(kid if isinstance(kid, str) else None)
        except Exception:
            return False

    def _verify(self, token: str, subject_id: str | None, now: float) -> dict[str, Any]:
        compact = _token.split(token, self.max_token_bytes)
        jws = _token.verify_signature(compact, self.issuer)
        claims = _token.loads_object(jws.payload, "payload")
        _token.check_typ(jws.header, self.typ)
        _token.check_claims(
            claims,
            issuer=self.issuer.issuer,
            audiences=self.audiences,
            required=frozenset({"exp", "iat", "iss", "sub"}),
            leeway=self.leeway,
            now=now,
        )
        if subject_id is not None:
            bound = claims.get(self.subject_claim)
            if bound is None:
                raise MissingClaimError(f"attestation lacks the {self.subject_claim!r} claim")
            if bound != subject_id:
                if self.on_subject_mismatch == "reject":
                    raise SubjectMismatchError("attestation is for another subject")
                return {**unverified_device(), "subject_mismatch": True}
        posture = _posture(claims)
        iat = _token.numeric(claims, "iat") or 0.0
        age = max(0.0, now - iat)
        device: dict[str, Any] = {
            "verified": True,
            "stale": False,
            **posture,
            "issuer": self.issuer.issuer,
            "attested_at": claims["iat"],
            "age": int(age),
        }
        if age > self.max_age:
            if self.on_stale == "reject":
                raise StaleAttestationError("attestation is older than the maximum age")
            device.update(dict.fromkeys(POSTURE_FLAGS, False))
            device["stale"] = True
            device["attested"] = posture
        return device


def _posture(claims: Mapping[str, Any]) -> dict[str, Any]:
    sub = claims["sub"]
    if not sub:
        raise InvalidClaimError("claim 'sub' (the device id) must not be empty")
    out: dict[str, Any] = {"id": sub}
    for name in POSTURE_FLAGS:
        value = claims.get(name, False)
        if not isinstance(value, bool):
            raise InvalidClaimError(f"claim {name!r} must be a boolean")
        out[name] = value
    for name in _POSTURE_STRINGS:
        value = claims.get(name)
        if value is not None and not isinstance(value, str):
            raise InvalidClaimError(f"claim {name!r} must be a string")
        out[name] = value
    _token.numeric(claims, "last_check_in")
    out["last_check_in"] = claims.get("last_check_in")
    return out
