"""Why a token or attestation was refused, one class and one stable ``code`` per reason.

Every class is an :class:`zerotrust.errors.IdentityError`, so one ``except`` catches them
all, and ``code`` is what a web adapter puts in its answer. Messages name the reason
and, at most, a claim or header name; never the token, a claim value or a key.
"""

from __future__ import annotations

from zerotrust.errors import IdentityError

__all__ = [
    "AlgorithmNotAllowedError",
    "ExpiredTokenError",
    "IdentityConfigError",
    "InvalidClaimError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "KeysUnavailableError",
    "MissingClaimError",
    "MissingTokenError",
    "NotConfiguredError",
    "NotYetValidError",
    "StaleAttestationError",
    "SubjectMismatchError",
    "UnknownKeyError",
    "UntrustedIssuerError",
    "WrongAudienceError",
    "WrongTypeError",
]


class IdentityConfigError(IdentityError):
    """A verifier was configured unsafely or inconsistently; raised at construction."""

    code = "invalid_configuration"


class InvalidTokenError(IdentityError):
    """The token is not a well-formed compact JWS with a JSON object payload."""

    code = "invalid_token"


class InvalidSignatureError(InvalidTokenError):
    """The signature does not verify with any configured key that fits the token."""

    code = "invalid_signature"


class AlgorithmNotAllowedError(InvalidTokenError):
    """The header ``alg`` is not allow-listed for the issuer or does not fit the key."""

    code = "algorithm_not_allowed"


class UnknownKeyError(InvalidTokenError):
    """No configured key has the token's ``kid``, even after a permitted refresh."""

    code = "unknown_key"


class ExpiredTokenError(InvalidTokenError):
    """``exp`` is in the past, beyond the leeway."""

    code = "expired"


class NotYetValidError(InvalidTokenError):
    """``nbf`` or ``iat`` is in the future, beyond the leeway."""

    code = "not_yet_valid"


class WrongAudienceError(InvalidTokenError):
    """No ``aud`` value is one of the configured audiences."""

    code = "wrong_audience"


class UntrustedIssuerError(InvalidTokenError):
    """``iss`` is not exactly one of the configured issuers."""

    code = "untrusted_issuer"


class MissingClaimError(InvalidTokenError):
    """A required claim is absent."""

    code = "missing_claim"


class InvalidClaimError(InvalidTokenError):
    """A claim is present but has the wrong JSON type or an impossible value."""

    code = "invalid_claim"


class WrongTypeError(InvalidTokenError):
    """The header ``typ`` is not the configured one (e.g. an ID token where ``at+jwt`` is due)."""

    code = "wrong_type"


class KeysUnavailableError(IdentityError):
    """No verification keys could be loaded (JWKS unreachable and none known yet)."""

    code = "keys_unavailable"


class StaleAttestationError(IdentityError):
    """A device attestation is older than the configured maximum age."""

    code = "stale_attestation"


class SubjectMismatchError(IdentityError):
    """A device attestation is bound to a different subject than the request's."""

    code = "subject_mismatch"


class MissingTokenError(IdentityError):
    """A verifier is configured but the request carries no token to verify."""

    code = "missing_token"


class NotConfiguredError(IdentityError):
    """The request carries a token or attestation but no verifier for it is configured."""

    code = "not_configured"
