"""The shared verification core: strict compact-JWS parsing, signature check, claim checks.

Parsing is stricter than PyJWT's (canonical base64url only, no duplicate JSON members,
no NaN) because two parsers that disagree about a token are how confusion attacks start.
The cryptography is PyJWT's algorithm objects over keys pinned in :mod:`.keys`.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Any, TypeVar

import attrs
from jwt.algorithms import Algorithm, get_default_algorithms

from zerotrust.errors import IdentityError
from zerotrust.identity.errors import (
    AlgorithmNotAllowedError,
    ExpiredTokenError,
    IdentityConfigError,
    InvalidClaimError,
    InvalidSignatureError,
    InvalidTokenError,
    MissingClaimError,
    NotYetValidError,
    UnknownKeyError,
    UntrustedIssuerError,
    WrongAudienceError,
    WrongTypeError,
)
from zerotrust.identity.keys import (
    ASYMMETRIC_ALGORITHMS,
    DEFAULT_ALGORITHMS,
    HMAC_ALGORITHMS,
    HMACKey,
    KeySource,
)

__all__ = ["Clock", "Issuer", "VerifiedJWS"]

Clock = Callable[[], datetime.datetime]
T = TypeVar("T")

_ALGORITHMS: Mapping[str, Algorithm] = MappingProxyType(
    {
        name: algo
        for name, algo in get_default_algorithms().items()
        if name in ASYMMETRIC_ALGORITHMS | HMAC_ALGORITHMS
    }
)
_SEGMENT = re.compile(r"[A-Za-z0-9_-]*")
_MAX_KID = 1024
MAX_LEEWAY = 300.0


def _optional_set(value: Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    return frozenset((value,) if isinstance(value, str) else value)


def string_set(value: str | Iterable[str]) -> frozenset[str]:
    return frozenset((value,) if isinstance(value, str) else value)


@attrs.frozen
class Issuer:
    """One trusted issuer: its exact ``iss``, its keys and its algorithm allow-list.

    ``algorithms`` defaults to :data:`DEFAULT_ALGORITHMS` (asymmetric only), or to
    ``HS256`` for an :class:`HMACKey`. ``none`` can never be enabled, and HMAC and
    asymmetric algorithms never share an issuer: that mix is what key confusion needs.
    """

    issuer: str
    keys: KeySource
    algorithms: frozenset[str] | None = attrs.field(default=None, converter=_optional_set)

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.issuer, str) or not self.issuer:
            raise IdentityConfigError("an issuer must be a non-empty string")
        if not isinstance(self.keys, KeySource):
            raise IdentityConfigError("Issuer.keys must be a key source (StaticKeys, ...)")
        algorithms = self.allowed_algorithms
        if not algorithms:
            raise IdentityConfigError("an issuer needs at least one algorithm")
        if any(a.lower() == "none" for a in algorithms):
            raise IdentityConfigError('the "none" algorithm can never be enabled')
        unknown = algorithms - ASYMMETRIC_ALGORITHMS - HMAC_ALGORITHMS
        if unknown:
            raise IdentityConfigError(f"unsupported algorithms: {', '.join(sorted(unknown))}")
        if isinstance(self.keys, HMACKey):
            if algorithms - HMAC_ALGORITHMS:
                raise IdentityConfigError("an HMAC secret allows only HS256/HS384/HS512")
            if algorithms - self.keys.algorithms:
                raise IdentityConfigError("the HMAC secret is too short for an allowed algorithm")
        elif algorithms & HMAC_ALGORITHMS:
            raise IdentityConfigError(
                "HMAC algorithms need an HMACKey and never share an issuer with public keys"
            )

    @property
    def allowed_algorithms(self) -> frozenset[str]:
        if self.algorithms is not None:
            return self.algorithms
        return frozenset({"HS256"}) if isinstance(self.keys, HMACKey) else DEFAULT_ALGORITHMS


@attrs.frozen
class VerifiedJWS:
    """A compact JWS whose signature verified; the payload is not yet judged."""

    header: Mapping[str, Any] = attrs.field(eq=False)
    payload: bytes
    algorithm: str
    key_id: str | None
    issuer: str


@attrs.frozen
class _Compact:
    header: dict[str, Any]
    signing_input: bytes
    payload: bytes
    signature: bytes


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def timestamp(now: datetime.datetime | None, clock: Clock) -> float:
    moment = now if now is not None else clock()
    if not isinstance(moment, datetime.datetime) or moment.tzinfo is None:
        raise IdentityConfigError("the verifier clock must give an aware datetime")
    return moment.timestamp()


def guard(step: Callable[[], T]) -> T:
    """Fail closed: anything but an IdentityError becomes an InvalidTokenError."""
    try:
        return step()
    except IdentityError:
        raise
    except Exception as exc:
        raise InvalidTokenError("token could not be verified") from exc


def check_leeway(leeway: float) -> None:
    if not 0 <= leeway <= MAX_LEEWAY:
        raise IdentityConfigError(f"leeway must be between 0 and {MAX_LEEWAY:g} seconds")


def issuers_by_name(issuers: Any) -> Mapping[str, Issuer]:
    if isinstance(issuers, Issuer):
        issuers = (issuers,)
    table: dict[str, Issuer] = {}
    for item in issuers:
        if not isinstance(item, Issuer):
            raise IdentityConfigError("issuers must be Issuer values")
        if item.issuer in table:
            raise IdentityConfigError("each issuer may be configured only once")
        table[item.issuer] = item
    if not table:
        raise IdentityConfigError("at least one issuer is required")
    return MappingProxyType(table)


def split(token: Any, max_bytes: int) -> _Compact:
    """Parse a compact JWS strictly; anything else is :class:`InvalidTokenError`."""
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise InvalidTokenError("token is not ASCII") from None
    if not isinstance(token, str):
        raise InvalidTokenError("token must be a string")
    if len(token) > max_bytes:
        raise InvalidTokenError(f"token longer than {max_bytes} characters")
    parts = token.split(".")
    if len(parts) != 3:
        raise InvalidTokenError("token is not a compact JWS (three dot-separated parts)")
    head_b64, payload_b64, sig_b64 = parts
    if not head_b64 or not sig_b64:
        raise InvalidTokenError("token has an empty header or signature")
    header = loads_object(b64decode(head_b64), "header")
    return _Compact(
        header=header,
        signing_input=f"{head_b64}.{payload_b64}".encode("ascii"),
        payload=b64decode(payload_b64),
        signature=b64decode(sig_b64),
    )


def b64decode(segment: str) -> bytes:
    """Canonical unpadded base64url only (RFC 7515 2): no padding, spaces or stray bits."""
    if not _SEGMENT.fullmatch(segment) or len(segment) % 4 == 1:
        raise InvalidTokenError("token part is not base64url")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise InvalidTokenError("token part is not base64url") from None
    if base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii") != segment:
        raise InvalidTokenError("token part is not canonical base64url")
    return data


def loads_object(data: bytes, what: str) -> dict[str, Any]:
    """A JSON object with unique member names and finite numbers, or InvalidTokenError."""
    try:
        value = json.loads(
            data.decode("utf-8"),
            object_pairs_hook=_unique_members,
            parse_constant=_refuse_constant,
            parse_int=_int64,
        )
    except (ValueError, RecursionError):
        raise InvalidTokenError(f"token {what} is not valid JSON") from None
    if not isinstance(value, dict):
        raise InvalidTokenError(f"token {what} is not a JSON object")
    return value


def _unique_members(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError("duplicate member")
        out[key] = value
    return out


def _int64(text: str) -> int:
    # Larger integers are not interoperable JSON (RFC 7493) and the CEL backends overflow.
    if len(text) > 20 or not -(2**63) <= (value := int(text)) < 2**63:
        raise ValueError("integer out of the 64-bit range")
    return value


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def route(compact: _Compact, issuers: Mapping[str, Issuer]) -> Issuer:
    """The issuer whose keys must verify this token (read from ``iss`` when there are several)."""
    if len(issuers) == 1:
        return next(iter(issuers.values()))
    iss = loads_object(compact.payload, "payload").get("iss")
    if not isinstance(iss, str) or iss not in issuers:
        raise UntrustedIssuerError("token issuer is not trusted")
    return issuers[iss]


def verify_signature(compact: _Compact, issuer: Issuer) -> VerifiedJWS:
    header = compact.header
    alg = header.get("alg")
    if not isinstance(alg, str) or alg not in issuer.allowed_algorithms:
        raise AlgorithmNotAllowedError("token algorithm is not allowed")
    if "crit" in header:
        # RFC 7515 4.1.11: we understand no extension, so any crit must be refused.
        raise InvalidTokenError("token uses critical header extensions")
    if "b64" in header and header["b64"] is not True:
        raise InvalidTokenError("unencoded payloads (RFC 7797) are refused")
    kid = header.get("kid")
    if kid is not None and (not isinstance(kid, str) or len(kid) > _MAX_KID):
        raise InvalidTokenError("token kid is not a short string")
    keys = issuer.keys.lookup(kid)
    if not keys:
        raise UnknownKeyError("no configured key has the token's kid")
    fitting = [k for k in keys if alg in k.algorithms]
    if not fitting:
        raise AlgorithmNotAllowedError("token algorithm does not fit the key")
    algorithm = _ALGORITHMS[alg]
    for key in fitting:
        try:
            ok = algorithm.verify(compact.signing_input, key.key, compact.signature)
        except Exception:
            ok = False
        if ok:
            return VerifiedJWS(
                header=MappingProxyType(dict(header)),
                payload=compact.payload,
                algorithm=alg,
                key_id=key.kid,
                issuer=issuer.issuer,
            )
    raise InvalidSignatureError("token signature does not verify")


def check_typ(header: Mapping[str, Any], expected: str | None) -> None:
    """RFC 7515 4.1.9: compare case-insensitively; ``application/`` may be omitted."""
    if expected is None:
        return
    typ = header.get("typ")
    if not isinstance(typ, str) or _media_type(typ) != _media_type(expected):
        raise WrongTypeError("token typ is not the expected one")


def _media_type(value: str) -> str:
    value = value.strip().lower()
    return value.removeprefix("application/")


def numeric(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim as a float; None when absent; refused when not a finite number."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidClaimError(f"claim {name!r} must be a number")
    return float(value)


def check_claims(
    claims: Mapping[str, Any],
    *,
    issuer: str,
    audiences: frozenset[str],
    required: frozenset[str],
    leeway: float,
    now: float,
) -> None:
    """Registered-claim checks shared by access tokens and device attestations."""
    for name in sorted(required | ({"aud"} if audiences else set())):
        if name not in claims:
            raise MissingClaimError(f"required claim {name!r} is missing")
    exp = numeric(claims, "exp")
    nbf = numeric(claims, "nbf")
    iat = numeric(claims, "iat")
    if exp is not None and exp <= now - leeway:
        raise ExpiredTokenError("token has expired")
    if nbf is not None and nbf > now + leeway:
        raise NotYetValidError("token is not yet valid (nbf)")
    if iat is not None and iat > now + leeway:
        raise NotYetValidError("token was issued in the future (iat)")
    if claims.get("iss") != issuer:
        raise UntrustedIssuerError("token issuer is not trusted")
    if "aud" in claims or audiences:
        aud = claims.get("aud")
        values = [aud] if isinstance(aud, str) else aud
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise InvalidClaimError("claim 'aud' must be a string or an array of strings")
        if not audiences:
            raise WrongAudienceError("token has an audience but none is expected")
        if audiences.isdisjoint(values):
            raise WrongAudienceError("token audience is not accepted")
    for name in ("sub", "jti"):
        if name in claims and not isinstance(claims[name], str):
            raise InvalidClaimError(f"claim {name!r} must be a string")
