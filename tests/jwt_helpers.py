"""Build tokens at test time from the fixed keys in ../shared/conformance/jwt/pyjwt-keys."""

from __future__ import annotations

import base64
import datetime
import functools
import json
from pathlib import Path
from typing import Any

import pytest
from jwt.algorithms import RSAAlgorithm, get_default_algorithms

from zerotrust.identity import Issuer, JWTVerifier, StaticKeys

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "conformance"
JWT_DIR = SHARED / "jwt"
KEYS = JWT_DIR / "pyjwt-keys" / "tests" / "keys"
needs_keys = pytest.mark.skipif(
    not KEYS.is_dir(), reason=f"shared conformance keys not found at {KEYS}"
)

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
T = int(NOW.timestamp())
ISSUER = "https://as.example.net"
AUDIENCE = "https://rs.example.com"
RSA_KID = "bilbo.baggins@hobbiton.example"
ALGORITHMS = get_default_algorithms()


def b64u(data: bytes | str) -> str:
    raw = data.encode() if isinstance(data, str) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def part(value: Any) -> str:
    """Encode a header or payload: bytes as they are, anything else as compact JSON."""
    if isinstance(value, bytes):
        return b64u(value)
    return b64u(json.dumps(value, separators=(",", ":")))


def sign(alg: str, key: Any, message: bytes) -> bytes:
    algorithm = ALGORITHMS[alg]
    return algorithm.sign(message, algorithm.prepare_key(key))


def token(header: Any, payload: Any, alg: str | None = None, key: Any = None) -> str:
    """A compact JWS signed with ``key`` under ``alg`` (defaults to the header's alg)."""
    signing_input = f"{part(header)}.{part(payload)}"
    alg = alg or header["alg"]
    signature = sign(alg, key, signing_input.encode("ascii"))
    return f"{signing_input}.{b64u(signature)}"


def read(name: str) -> bytes:
    return (KEYS / name).read_bytes()


@functools.cache
def rsa_private() -> Any:
    return RSAAlgorithm.from_jwk(read("jwk_rsa_key.json").decode())


def rsa_public_jwk() -> dict[str, Any]:
    jwk: dict[str, Any] = json.loads(read("jwk_rsa_pub.json"))
    return jwk


def claims(**over: Any) -> dict[str, Any]:
    """RFC 9470 Figure 6, moved to ``NOW`` (exp = now + 300)."""
    base: dict[str, Any] = {
        "iss": ISSUER,
        "sub": "someone@example.net",
        "aud": AUDIENCE,
        "exp": T + 300,
        "iat": T - 10,
        "jti": "e1j3V_bKic8-LAEB_lccD0G",
        "client_id": "s6BhdRkqt3",
        "scope": "purchase",
        "auth_time": T - 12,
        "acr": "myACR",
    }
    for key, value in over.items():
        if value is None:
            base.pop(key, None)
        else:
            base[key] = value
    return base


def rs256(payload: Any, **header: Any) -> str:
    head = {"alg": "RS256", "typ": "at+jwt", "kid": RSA_KID, **header}
    return token(head, payload, "RS256", rsa_private())


def verifier(**options: Any) -> JWTVerifier:
    """The recipes' verifier: RS256 only, one issuer and audience, leeway 0, one-kid JWKS."""
    keys = options.pop("keys", None) or StaticKeys.from_jwks({"keys": [rsa_public_jwk()]})
    algorithms = options.pop("algorithms", ("RS256",))
    options.setdefault("leeway", 0)
    options.setdefault("clock", lambda: NOW)
    return JWTVerifier(
        issuers=Issuer(ISSUER, keys, algorithms=algorithms), audiences=AUDIENCE, **options
    )
