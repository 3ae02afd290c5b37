"""Configuration refusals, claim mapping, key loading, error hygiene and the public API."""

from __future__ import annotations

import datetime
import inspect
import json
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from jwt_helpers import (
    AUDIENCE,
    ISSUER,
    KEYS,
    NOW,
    claims,
    needs_keys,
    read,
    rs256,
    rsa_public_jwk,
    token,
    verifier,
)

import zerotrust.identity
import zerotrust.identity.errors
from zerotrust.errors import IdentityError
from zerotrust.identity import (
    AlgorithmNotAllowedError,
    DeviceVerifier,
    HMACKey,
    IdentityConfigError,
    InvalidClaimError,
    InvalidSignatureError,
    InvalidTokenError,
    Issuer,
    JWTVerifier,
    StaticKeys,
    UntrustedIssuerError,
    VerificationKey,
    load_key,
)

pytestmark = needs_keys


def rsa_keys() -> StaticKeys:
    return StaticKeys.from_jwks({"keys": [rsa_public_jwk()]})


@pytest.mark.parametrize("leeway", [-1, 301, 3600])
def test_leeway_is_bounded(leeway: float) -> None:
    with pytest.raises(IdentityConfigError):
        verifier(leeway=leeway)


def test_verifier_configuration_refusals() -> None:
    with pytest.raises(IdentityConfigError):
        JWTVerifier(issuers=(), audiences=AUDIENCE)
    with pytest.raises(IdentityConfigError):
        JWTVerifier(
            issuers=[Issuer(ISSUER, rsa_keys()), Issuer(ISSUER, HMACKey(b"k" * 32))],
            audiences=AUDIENCE,
        )
    with pytest.raises(IdentityConfigError):
        JWTVerifier(issuers=Issuer(ISSUER, rsa_keys()), audiences=[""])
    with pytest.raises(IdentityConfigError):
        DeviceVerifier(Issuer(ISSUER, rsa_keys()), max_age=0)
    with pytest.raises(IdentityConfigError):
        DeviceVerifier(Issuer(ISSUER, rsa_keys()), on_stale="ignore")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "algorithms", [["none"], ["RS256", "none"], ["RS1"], [], ["HS256"], ["RS256", "HS512"]]
)
def test_issuer_algorithm_refusals(algorithms: list[str]) -> None:
    with pytest.raises(IdentityConfigError):
        Issuer(ISSUER, rsa_keys(), algorithms=algorithms)


def test_hmac_secret_rules() -> None:
    with pytest.raises(IdentityConfigError):
        HMACKey(b"short")
    with pytest.raises(IdentityConfigError):
        HMACKey("a string secret" * 4)  # type: ignore[arg-type]
    with pytest.raises(IdentityConfigError):
        Issuer(ISSUER, HMACKey(b"k" * 32), algorithms=["HS512"])
    with pytest.raises(IdentityConfigError):
        Issuer(ISSUER, HMACKey(b"k" * 64), algorithms=["RS256"])
    assert Issuer(ISSUER, HMACKey(b"k" * 64), algorithms=["HS512"]).allowed_algorithms == {"HS512"}
    secret = b"top-secret-value-that-is-32-byte"
    assert secret.decode() not in repr(HMACKey(secret))
    assert "key=" not in repr(HMACKey(secret).lookup(None)[0])


@pytest.mark.parametrize(
    ("material", "ok"),
    [
        ("testkey_rsa.pub", True),  # OpenSSH
        ("testkey_rsa.cer", True),  # X.509 certificate
        ("testkey_ec.pub", True),
        ("testkey_ed25519.pub", True),
        ("testkey_ed25519.pub.pem", True),
        ("jwk_rsa_pub.json", True),
        ("jwk_ec_pub_P-256.json", True),
        ("testkey_pkcs1.pub.pem", False),  # RSA 1024
        ("testkey_rsa.priv", False),  # a private key
        ("testkey_ec.priv", False),
        ("jwk_rsa_key.json", False),  # a private JWK
        ("jwk_hmac.json", False),  # symmetric JWK
    ],
)
def test_load_key(material: str, ok: bool) -> None:
    data = read(material)
    if ok:
        assert isinstance(load_key(data), VerificationKey)
    else:
        with pytest.raises(IdentityConfigError) as info:
            load_key(data)
        assert data.decode(errors="replace")[40:80] not in str(info.value)


def test_jwks_documents() -> None:
    # A signing key and an encryption key: the encryption key is skipped.
    keys = StaticKeys.from_jwks_file(KEYS / "jwk_keyset_with_unknown_alg.json")
    assert [k.kid for k in keys.keys] == ["U1MayerhVuRj8xtFR8hyMH9lCfVMKlb3TG7mbQAS19M"]
    with pytest.raises(IdentityConfigError):
        StaticKeys.from_jwks_file(KEYS / "missing.json")
    with pytest.raises(IdentityConfigError):
        StaticKeys.from_jwks({"keys": [{**rsa_public_jwk(), "use": "enc"}]})
    with pytest.raises(IdentityConfigError):
        StaticKeys(())
    with pytest.raises(IdentityConfigError):
        load_key(rsa_public_jwk(), algorithm="ES256")
    pinned = load_key({**rsa_public_jwk(), "alg": "PS256"})
    assert pinned.algorithms == {"PS256"}


def test_jwks_file(tmp_path: Any) -> None:
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps({"keys": [rsa_public_jwk()]}))
    v = verifier(keys=StaticKeys.from_jwks_file(path))
    assert v.verify(rs256(claims())).id


def test_claim_mapping() -> None:
    v = verifier(
        roles_from=["realm_access.roles", "resource_access.api.roles"],
        groups_from=[("https://example.com/groups",)],
        subject_type="employee",
    )
    tok = rs256(
        claims(
            realm_access={"roles": ["reader", "writer"]},
            resource_access={"api": {"roles": ["writer", "admin"]}},
            **{"https://example.com/groups": "staff"},
            amr="pwd",
            scp=["a", "b"],
            scope="b c",
        )
    )
    subject = verifier().verify(rs256(claims())).to_dict()
    assert subject["properties"]["amr"] == [] and subject["properties"]["roles"] == []
    mapped = v.verify(tok)
    assert mapped.type == "employee"
    assert mapped.properties["roles"] == ["reader", "writer", "admin"]
    assert mapped.properties["groups"] == ["staff"]
    assert mapped.properties["amr"] == ["pwd"]
    assert mapped.properties["scopes"] == ["b", "c", "a"]
    assert mapped.properties["auth_time"] == claims()["auth_time"]


@pytest.mark.parametrize(
    "over",
    [
        {"roles": [1]},
        {"roles": {"a": 1}},
        {"amr": [True]},
        {"acr": 2},
        {"sub": ""},
        {"sub": 5},
        {"auth_time": 10**10},
    ],
)
def test_malformed_identity_claims_are_refused(over: dict[str, Any]) -> None:
    with pytest.raises(InvalidClaimError):
        verifier().verify(rs256(claims(**over)))


def test_several_issuers_are_routed_by_iss() -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    other_jwk = {**ECAlgorithm.to_jwk(other.public_key(), as_dict=True), "kid": "o"}
    v = JWTVerifier(
        issuers=[
            Issuer(ISSUER, rsa_keys(), ["RS256"]),
            Issuer("https://other.example", StaticKeys.from_jwks({"keys": [other_jwk]})),
            Issuer("https://hmac.example", HMACKey(b"h" * 32)),
        ],
        audiences=AUDIENCE,
        clock=lambda: NOW,
    )
    assert v.verify(rs256(claims())).id
    good = token({"alg": "ES256", "kid": "o"}, claims(iss="https://other.example"), "ES256", other)
    assert v.verify(good).properties["iss"] == "https://other.example"
    forged = token({"alg": "ES256", "kid": "o"}, claims(), "ES256", other)  # claims ISSUER
    with pytest.raises(AlgorithmNotAllowedError):
        v.verify(forged)
    confused = token({"alg": "HS256"}, claims(iss="https://hmac.example"), "HS256", b"h" * 31)
    with pytest.raises(InvalidSignatureError):
        v.verify(confused)
    with pytest.raises(UntrustedIssuerError):
        v.verify(rs256(claims(iss="https://unknown.example")))
    assert "h" * 32 not in repr(v)


class _BrokenSource:
    def lookup(self, kid: str | None) -> tuple[VerificationKey, ...]:
        raise RuntimeError("database on fire")

    def would_block(self, kid: str | None) -> bool:
        return False


def test_unexpected_failures_fail_closed() -> None:
    v = verifier(keys=_BrokenSource())
    with pytest.raises(InvalidTokenError) as info:
        v.verify(rs256(claims()))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.code == "invalid_token"


def test_clock_must_be_aware() -> None:
    v = verifier(clock=lambda: datetime.datetime(2026, 3, 2, 10, 0))
    with pytest.raises(IdentityConfigError):
        v.verify(rs256(claims()))


def test_public_api_is_exported_and_rooted() -> None:
    for name in zerotrust.identity.__all__:
        assert hasattr(zerotrust.identity, name), name
    codes = set()
    for name, obj in inspect.getmembers(zerotrust.identity.errors, inspect.isclass):
        if issubclass(obj, Exception):
            assert name in zerotrust.identity.__all__, name
            assert issubclass(obj, IdentityError) and issubclass(obj, ValueError), name
            codes.add(obj.code)
            assert obj("message").code == obj.code
    assert len(codes) == len(zerotrust.identity.errors.__all__)


def test_import_zerotrust_does_not_import_identity() -> None:
    code = "import sys, zerotrust; print('zerotrust.identity' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
