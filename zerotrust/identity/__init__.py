"""Verified identities: JWT subjects and device posture attestations.

Imports PyJWT and cryptography, so ``import zerotrust`` does not import this package;
import it where a verifier is configured.
"""

from __future__ import annotations

from zerotrust.errors import IdentityError
from zerotrust.identity._token import MAX_LEEWAY, Clock, Issuer, VerifiedJWS
from zerotrust.identity.device import POSTURE_FLAGS, DeviceVerifier, unverified_device
from zerotrust.identity.errors import (
    AlgorithmNotAllowedError,
    ExpiredTokenError,
    IdentityConfigError,
    InvalidClaimError,
    InvalidSignatureError,
    InvalidTokenError,
    KeysUnavailableError,
    MissingClaimError,
    MissingTokenError,
    NotConfiguredError,
    NotYetValidError,
    StaleAttestationError,
    SubjectMismatchError,
    UnknownKeyError,
    UntrustedIssuerError,
    WrongAudienceError,
    WrongTypeError,
)
from zerotrust.identity.jwt import ClaimPath, JWTVerifier
from zerotrust.identity.keys import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_ALGORITHMS,
    HMAC_ALGORITHMS,
    HMACKey,
    KeySource,
    StaticKeys,
    VerificationKey,
    load_key,
)
from zerotrust.identity.remote import RemoteJWKS
from zerotrust.identity.resolver import IdentityResolver, verify_request

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "HMAC_ALGORITHMS",
    "MAX_LEEWAY",
    "POSTURE_FLAGS",
    "AlgorithmNotAllowedError",
    "ClaimPath",
    "Clock",
    "DeviceVerifier",
    "ExpiredTokenError",
    "HMACKey",
    "IdentityConfigError",
    "IdentityError",
    "IdentityResolver",
    "InvalidClaimError",
    "InvalidSignatureError",
    "InvalidTokenError",
    "Issuer",
    "JWTVerifier",
    "KeySource",
    "KeysUnavailableError",
    "MissingClaimError",
    "MissingTokenError",
    "NotConfiguredError",
    "NotYetValidError",
    "RemoteJWKS",
    "StaleAttestationError",
    "StaticKeys",
    "SubjectMismatchError",
    "UnknownKeyError",
    "UntrustedIssuerError",
    "VerificationKey",
    "VerifiedJWS",
    "WrongAudienceError",
    "WrongTypeError",
    "load_key",
    "unverified_device",
    "verify_request",
]
