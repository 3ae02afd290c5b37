"""Where verification keys come from: static keys, JWKS documents, an HMAC secret.

A JWKS URL (:class:`zerotrust.identity.remote.RemoteJWKS`) shares this module's key
set parser.

Every key is pinned to the algorithms its type allows (an RSA key never verifies an
HMAC, an EC key only its own curve), so the header ``alg`` can choose among a key's
algorithms but never change what kind of key is used. Symmetric keys exist only as an
explicitly configured :class:`HMACKey`: a JWKS (file, URL, static) never yields one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, runtime_checkable

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

from zerotrust.identity.errors import IdentityConfigError

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "DEFAULT_ALGORITHMS",
    "HMAC_ALGORITHMS",
    "HMACKey",
    "KeySource",
    "StaticKeys",
    "VerificationKey",
    "load_key",
]

_log = logging.getLogger("zerotrust.identity")

_RSA_ALGORITHMS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
_EC_ALGORITHM_BY_CURVE = MappingProxyType(
    {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512", "secp256k1": "ES256K"}
)
_JWK_CURVES = frozenset({"P-256", "P-384", "P-521", "secp256k1"})
HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
"""The HMAC algorithms; usable only with an :class:`HMACKey`."""
ASYMMETRIC_ALGORITHMS = _RSA_ALGORITHMS | frozenset(_EC_ALGORITHM_BY_CURVE.values()) | {"EdDSA"}
"""Every asymmetric algorithm a key may be pinned to."""
DEFAULT_ALGORITHMS = ASYMMETRIC_ALGORITHMS - {"ES256K"}
"""The default allow-list: asymmetric JOSE algorithms in common use."""
# RFC 7518 3.2: an HMAC key must be at least as long as the hash output.
_HMAC_MIN_BYTES = MappingProxyType({"HS256": 32, "HS384": 48, "HS512": 64})
_MIN_RSA_BITS = 2048
_PRIVATE_JWK_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
_MAX_KEYS = 100


@attrs.frozen
class VerificationKey:
    """One key and the algorithms it may verify. ``key`` is never shown in a repr."""

    kid: str | None
    algorithms: frozenset[str]
    key: Any = attrs.field(eq=False, repr=False)


_Keys = tuple[VerificationKey, ...]
_Skipped = tuple[tuple[str, str], ...]  # (kid as shown in logs, why it was skipped)


@runtime_checkable
class KeySource(Protocol):
    """Supplies the keys of one issuer."""

    def lookup(self, kid: str | None) -> tuple[VerificationKey, ...]:
        """Keys whose ``kid`` is ``kid`` (every key when ``kid`` is None); may refresh."""
        ...

    def would_block(self, kid: str | None) -> bool:
        """Whether :meth:`lookup` for this ``kid`` might do network I/O now."""
        ...


def load_key(
    material: Any, *, kid: str | None = None, algorithm: str | None = None
) -> VerificationKey:
    """Build a public key from a JWK mapping, PEM (key or certificate), OpenSSH line or key object.

    Private keys and symmetric JWKs are refused: a verifier needs only public keys, and
    HMAC secrets must be configured as :class:`HMACKey` so they can never mix with these.
    """
    try:
        if isinstance(material, Mapping):
            return _from_jwk(material, kid=kid, algorithm=algorithm)
        if isinstance(material, str):
            material = material.encode("utf-8")
        if isinstance(material, bytes):
            text = material.strip()
            if text.startswith(b"{"):
                return _from_jwk(_loads(text), kid=kid, algorithm=algorithm)
            material = _load_text_key(text)
        return _from_object(material, kid=kid, algorithm=algorithm)
    except IdentityConfigError:
        raise
    except Exception as exc:
        raise IdentityConfigError(
            f"cannot load a public key from the given {type(material).__name__} "
            f"({type(exc).__name__})"
        ) from exc


def _to_keys(items: Any) -> tuple[VerificationKey, ...]:
    if isinstance(items, Mapping | str | bytes) or not isinstance(items, Iterable):
        items = (items,)
    return tuple(i if isinstance(i, VerificationKey) else load_key(i) for i in items)


def _select(keys: tuple[VerificationKey, ...], kid: str | None) -> tuple[VerificationKey, ...]:
    if kid is None:
        return keys
    return tuple(k for k in keys if k.kid == kid)


@attrs.frozen
class StaticKeys:
    """Keys fixed at configuration time (PEM, JWK, OpenSSH, key objects, a JWKS file)."""

    keys: tuple[VerificationKey, ...] = attrs.field(converter=_to_keys)

    def __attrs_post_init__(self) -> None:
        if not self.keys:
            raise IdentityConfigError("StaticKeys needs at least one key")

    @classmethod
    def from_jwks(cls, document: Mapping[str, Any], *, source: str = "document") -> StaticKeys:
        """The usable signing keys of a JWKS document (RFC 7517 section 5).

        Keys this verifier cannot use (encryption keys, unknown ``kty`` or curve,
        ``key_ops`` without ``verify``, unsupported ``alg``, malformed) are skipped,
        each with a warning on the ``zerotrust.identity`` logger naming its ``kid``
        and why. Raises :class:`IdentityConfigError` when the document is not a JWKS
        or no usable key remains."""
        keys, skipped = _parse_jwks(document)
        _report_skipped(f"JWKS {source}", skipped)
        return cls(keys)

    @classmethod
    def from_jwks_file(cls, path: str | Path) -> StaticKeys:
        """Read a JWKS file once (as :meth:`from_jwks`). Build a new verifier to pick
        up a changed file. Raises :class:`IdentityConfigError`."""
        try:
            document = _loads(Path(path).read_bytes())
        except (OSError, ValueError, RecursionError) as exc:
            raise IdentityConfigError(f"cannot read JWKS file {str(path)!r}") from exc
        return cls.from_jwks(document, source=f"file {str(path)!r}")

    def lookup(self, kid: str | None) -> tuple[VerificationKey, ...]:
        return _select(self.keys, kid)

    def would_block(self, kid: str | None) -> bool:
        return False


@attrs.frozen
class HMACKey:
    """An explicitly configured HMAC secret: the only way HS256/384/512 can be enabled.

    The secret must be at least as long as the hash (RFC 7518 3.2). With a ``kid``, a
    token naming another ``kid`` is refused.
    """

    secret: bytes = attrs.field(repr=False)
    kid: str | None = None

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.secret, bytes):
            raise IdentityConfigError("HMACKey.secret must be bytes")
        if len(self.secret) < _HMAC_MIN_BYTES["HS256"]:
            raise IdentityConfigError("HMACKey.secret must be at least 32 bytes")

    @property
    def algorithms(self) -> frozenset[str]:
        """The HMAC algorithms this secret is long enough for."""
        return frozenset(a for a, n in _HMAC_MIN_BYTES.items() if len(self.secret) >= n)

    def lookup(self, kid: str | None) -> tuple[VerificationKey, ...]:
        if self.kid is not None and kid is not None and kid != self.kid:
            return ()
        return (VerificationKey(self.kid, self.algorithms, self.secret),)

    def would_block(self, kid: str | None) -> bool:
        return False


def _parse_jwks(document: Any) -> tuple[_Keys, _Skipped]:
    """The usable signing keys of a JWKS, and ``(kid, why)`` for every key skipped.

    RFC 7517 section 5: keys whose type, curve or parameters are not understood are
    ignored, not fatal. Raises :class:`IdentityConfigError` when ``document`` is not
    a JWKS, has more than 100 keys, or has no usable signing key."""
    if not isinstance(document, Mapping) or not isinstance(document.get("keys"), list):
        raise IdentityConfigError('a JWKS must be an object with a "keys" array')
    entries = document["keys"]
    if len(entries) > _MAX_KEYS:
        raise IdentityConfigError(f"a JWKS with more than {_MAX_KEYS} keys is refused")
    keys: list[VerificationKey] = []
    skipped: list[tuple[str, str]] = []
    for index, entry in enumerate(entries):
        try:
            if not isinstance(entry, Mapping):
                raise IdentityConfigError("not a JSON object")
            keys.append(load_key(entry))
        except IdentityConfigError as exc:
            skipped.append((_kid_of(entry, index), str(exc)))
    if not keys:
        raise IdentityConfigError(
            "the JWKS has no usable signing key"
            + (f" ({len(skipped)} skipped: {_reasons(skipped)})" if skipped else "")
        )
    return tuple(keys), tuple(skipped)


def _kid_of(entry: Any, index: int) -> str:
    """How a log line names a JWKS entry: its ``kid`` (quoted, bounded) or position."""
    kid = entry.get("kid") if isinstance(entry, Mapping) else None
    if isinstance(kid, str):
        return repr(kid[:64] + ("..." if len(kid) > 64 else ""))
    return f"#{index}"


def _reasons(skipped: Sequence[tuple[str, str]]) -> str:
    return "; ".join(f"{kid}: {why}" for kid, why in skipped[:5])


def _shown(value: Any) -> str:
    """A value from a key set, for a message: quoted and bounded (never key material)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _report_skipped(source: str, skipped: _Skipped) -> None:
    for kid, why in skipped:
        _log.warning("%s: key %s skipped: %s", source, kid, why)


def _from_jwk(jwk: Mapping[str, Any], *, kid: str | None, algorithm: str | None) -> VerificationKey:
    kty = jwk.get("kty")
    if kty == "oct":
        raise IdentityConfigError("symmetric JWKs are refused; configure an HMACKey")
    if _PRIVATE_JWK_MEMBERS & set(jwk):
        raise IdentityConfigError("private JWKs are refused; give the public key")
    use = jwk.get("use")
    if use is not None and use != "sig":
        raise IdentityConfigError(
            f'a JWK whose "use" is {_shown(use)}, not "sig", cannot verify signatures'
        )
    ops = jwk.get("key_ops")
    if ops is not None and (not isinstance(ops, list) or "verify" not in ops):
        raise IdentityConfigError('a JWK whose "key_ops" lacks "verify" cannot verify')
    jwk_kid = jwk.get("kid")
    if jwk_kid is not None and not isinstance(jwk_kid, str):
        raise IdentityConfigError('a JWK "kid" must be a string')
    jwk_alg = jwk.get("alg")
    if jwk_alg is not None and jwk_alg not in ASYMMETRIC_ALGORITHMS:
        raise IdentityConfigError(
            f'the JWK "alg" {_shown(jwk_alg)} is not a signature algorithm this verifier supports'
        )
    if algorithm is not None and jwk_alg is not None and algorithm != jwk_alg:
        raise IdentityConfigError("the configured algorithm differs from the JWK's")
    if kty == "RSA":
        key: Any = RSAAlgorithm.from_jwk(dict(jwk))
    elif kty == "EC":
        if jwk.get("crv") not in _JWK_CURVES:
            raise IdentityConfigError(f"unsupported EC curve {_shown(jwk.get('crv'))}")
        key = ECAlgorithm.from_jwk(dict(jwk))
    elif kty == "OKP":
        if jwk.get("crv") not in ("Ed25519", "Ed448"):
            raise IdentityConfigError(
                f"unsupported OKP curve {_shown(jwk.get('crv'))} (Ed25519 and Ed448 verify)"
            )
        key = OKPAlgorithm.from_jwk(dict(jwk))
    else:
        raise IdentityConfigError(f"unsupported JWK key type {_shown(kty)} (RSA, EC, OKP verify)")
    return _from_object(
        key, kid=kid if kid is not None else jwk_kid, algorithm=algorithm or jwk_alg
    )


def _load_text_key(text: bytes) -> Any:
    if text.startswith(b"-----BEGIN CERTIFICATE"):
        return x509.load_pem_x509_certificate(text).public_key()
    if text.startswith(b"-----BEGIN"):
        if b"PRIVATE" in text.split(b"\n", 1)[0]:
            raise IdentityConfigError("private keys are refused; give the public key")
        return serialization.load_pem_public_key(text)
    if text.startswith((b"ssh-", b"ecdsa-sha2-")):
        return serialization.load_ssh_public_key(text)
    raise IdentityConfigError("unrecognised key text (expected PEM, OpenSSH or JWK JSON)")


def _from_object(key: Any, *, kid: str | None, algorithm: str | None) -> VerificationKey:
    if isinstance(key, rsa.RSAPublicKey):
        if key.key_size < _MIN_RSA_BITS:
            raise IdentityConfigError(f"RSA keys under {_MIN_RSA_BITS} bits are refused")
        algorithms = _RSA_ALGORITHMS
    elif isinstance(key, ec.EllipticCurvePublicKey):
        alg = _EC_ALGORITHM_BY_CURVE.get(key.curve.name)
        if alg is None:
            raise IdentityConfigError("unsupported EC curve")
        algorithms = frozenset({alg})
    elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        algorithms = frozenset({"EdDSA"})
    else:
        raise IdentityConfigError("only RSA, EC and EdDSA public keys can verify tokens")
    if algorithm is not None:
        if algorithm not in algorithms:
            raise IdentityConfigError("the algorithm does not fit the key type")
        algorithms = frozenset({algorithm})
    return VerificationKey(kid, algorithms, key)


def _loads(data: bytes) -> Any:
    return json.loads(data, parse_constant=_refuse_constant)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
