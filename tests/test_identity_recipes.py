"""The 22 negative recipes of ../shared/conformance/jwt/negative-recipes.md, one test each.

Tokens are built at test time from the fixed keys in pyjwt-keys/. Every rejection is
also checked not to echo the token.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from jwt.algorithms import RSAAlgorithm
from jwt_helpers import (
    AUDIENCE,
    ISSUER,
    NOW,
    RSA_KID,
    T,
    b64u,
    claims,
    needs_keys,
    part,
    read,
    rs256,
    rsa_private,
    token,
    verifier,
)

from zerotrust import Effect, PolicyDecisionPoint
from zerotrust.errors import IdentityError
from zerotrust.identity import (
    AlgorithmNotAllowedError,
    DeviceVerifier,
    ExpiredTokenError,
    HMACKey,
    IdentityConfigError,
    InvalidClaimError,
    InvalidSignatureError,
    InvalidTokenError,
    Issuer,
    JWTVerifier,
    MissingClaimError,
    NotYetValidError,
    StaticKeys,
    UnknownKeyError,
    UntrustedIssuerError,
    WrongAudienceError,
    WrongTypeError,
    load_key,
    verify_request,
)

pytestmark = needs_keys


def reject(tok: str, expected: type[IdentityError] = IdentityError, **options: Any) -> str:
    v = options.pop("v", None) or verifier(**options)
    with pytest.raises(expected) as info:
        v.verify(tok)
    assert tok not in str(info.value) and tok not in repr(info.value)
    return info.value.code


def hs256(header: dict[str, Any], payload: Any, secret: bytes) -> str:
    signing_input = f"{part(header)}.{part(payload)}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64u(mac)}"


def test_baseline_token_is_accepted() -> None:
    subject = verifier().verify(rs256(claims()))
    assert subject.id == "someone@example.net"
    assert subject.properties["acr"] == "myACR"
    assert subject.properties["scopes"] == ["purchase"]


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
@pytest.mark.parametrize("signature", ["", "c2lnbmF0dXJl"])
def test_01_alg_none(alg: str, signature: str) -> None:
    tok = f"{part({'alg': alg, 'typ': 'JWT'})}.{part(claims())}.{signature}"
    assert reject(tok) in {"algorithm_not_allowed", "invalid_token"}
    with pytest.raises(IdentityConfigError):
        Issuer(
            ISSUER, StaticKeys.from_jwks({"keys": [json.loads(read("jwk_rsa_pub.json"))]}), [alg]
        )


@pytest.mark.parametrize("secret_form", ["pem", "jwk", "der"])
def test_02_hs256_keyed_with_the_rsa_public_key(secret_form: str) -> None:
    pem = read("testkey2_rsa.pub.pem")
    key = load_key(pem, kid=RSA_KID)
    secret = {
        "pem": pem,
        "jwk": RSAAlgorithm.to_jwk(key.key).encode(),
        "der": key.key.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    }[secret_form]
    tok = hs256({"alg": "HS256", "kid": RSA_KID}, claims(), secret)
    reject(tok, AlgorithmNotAllowedError, keys=StaticKeys([key]))
    # Even a permissive allow-list of every asymmetric algorithm refuses it.
    reject(tok, AlgorithmNotAllowedError, keys=StaticKeys([key]), algorithms=None)


@pytest.mark.parametrize("alg", ["RS512", "PS256"])
def test_03_alg_not_in_allow_list(alg: str) -> None:
    tok = token({"alg": alg, "kid": RSA_KID}, claims(), alg, rsa_private())
    reject(tok, AlgorithmNotAllowedError)
    assert verifier(algorithms=[alg]).verify(tok).id  # the same token with it allowed


def test_04_expired() -> None:
    reject(rs256(claims(exp=T - 1)), ExpiredTokenError)
    assert verifier(leeway=5).verify(rs256(claims(exp=T - 2)))
    reject(rs256(claims(exp=T - 2)), ExpiredTokenError, leeway=1)


def test_05_not_yet_valid() -> None:
    reject(rs256(claims(nbf=T + 10)), NotYetValidError)
    assert verifier(leeway=13).verify(rs256(claims(nbf=T + 10)))


def test_06_issued_in_the_future_is_refused() -> None:
    reject(rs256(claims(iat=T + 10)), NotYetValidError)
    assert verifier(leeway=13).verify(rs256(claims(iat=T + 10)))


@pytest.mark.parametrize("name", ["exp", "iat", "nbf", "auth_time"])
@pytest.mark.parametrize("value", ["not-an-int", True, [1], {"a": 1}])
def test_07_non_numeric_time_claims(name: str, value: Any) -> None:
    reject(rs256(claims(**{name: value})), InvalidClaimError)


@pytest.mark.parametrize("aud", ["https://other.example", ["a", "b"], [], 7, [AUDIENCE, 7]])
def test_08_wrong_audience(aud: Any) -> None:
    assert reject(rs256(claims(aud=aud))) in {"wrong_audience", "invalid_claim"}
    assert verifier().verify(rs256(claims(aud=["x", AUDIENCE])))


def test_09_missing_audience() -> None:
    reject(rs256(claims(aud=None)), MissingClaimError)


def test_10_audience_present_none_expected() -> None:
    with pytest.raises(IdentityConfigError):
        JWTVerifier(issuers=verifier().issuers.values(), audiences=())
    # Device attestations may be audience-less, but then an aud means "not for us".
    keys = StaticKeys.from_jwks({"keys": [json.loads(read("jwk_rsa_pub.json"))]})
    device = DeviceVerifier(Issuer(ISSUER, keys), clock=lambda: NOW)
    with pytest.raises(WrongAudienceError):
        device.verify(rs256(claims()), subject_id=None)


def test_11_wrong_issuer() -> None:
    reject(rs256(claims(iss="https://evil.example")), UntrustedIssuerError)


def test_12_issuer_prefix_is_not_a_match() -> None:
    keys = StaticKeys.from_jwks({"keys": [json.loads(read("jwk_rsa_pub.json"))]})
    v = JWTVerifier(
        issuers=Issuer("urn:expected", keys, ["RS256"]), audiences=AUDIENCE, clock=lambda: NOW
    )
    reject(rs256(claims(iss="urn:")), UntrustedIssuerError, v=v)
    reject(rs256(claims(iss="urn:expected-not")), UntrustedIssuerError, v=v)
    assert v.verify(rs256(claims(iss="urn:expected")))


@pytest.mark.parametrize(("drop", "required"), [("exp", ()), ("sub", ()), ("jti", ("jti",))])
def test_13_missing_required_claim(drop: str, required: tuple[str, ...]) -> None:
    reject(rs256(claims(**{drop: None})), MissingClaimError, required_claims=required)


def test_14_unknown_crit_extension() -> None:
    header = {"alg": "HS256", "crit": ["x-custom-policy"], "x-custom-policy": "require-mfa"}
    secret = b"s" * 32
    tok = hs256(header, claims(), secret)
    reject(tok)  # the RS256 verifier: not even the algorithm is allowed
    hmac_verifier = verifier(keys=HMACKey(secret), algorithms=["HS256"])
    reject(tok, InvalidTokenError, v=hmac_verifier)
    assert hmac_verifier.verify(hs256({"alg": "HS256"}, claims(), secret))
    signed = rs256(claims(), crit=["x-custom-policy"], **{"x-custom-policy": "require-mfa"})
    assert reject(signed, InvalidTokenError) == "invalid_token"


@pytest.mark.parametrize("crit", [[], "x", [1], ["absent"], None])
def test_15_malformed_crit(crit: Any) -> None:
    assert reject(rs256(claims(), crit=crit), InvalidTokenError) == "invalid_token"


def test_16_kid_injection_and_unknown_kid() -> None:
    tok = hs256({"alg": "HS256", "kid": "../../../../../../dev/null"}, claims(), b"")
    reject(tok, AlgorithmNotAllowedError)
    tok = hs256({"alg": "HS256", "kid": "' UNION SELECT 'secret'--"}, claims(), b"secret")
    reject(tok, AlgorithmNotAllowedError)
    reject(rs256(claims(), kid="nonexistent"), UnknownKeyError)
    reject(rs256(claims(), kid="../../../../../../dev/null"), UnknownKeyError)
    reject(rs256(claims(), kid=7), InvalidTokenError)


def test_17_header_supplied_keys_are_never_trusted() -> None:
    attacker = serialization.load_pem_private_key(read("testkey_rsa.priv"), None)
    attacker_jwk = json.loads(RSAAlgorithm.to_jwk(attacker.public_key()))  # type: ignore[arg-type]
    for extra in (
        {"jwk": attacker_jwk},
        {"jku": "https://attacker.example/jwks.json"},
        {"x5u": "https://attacker.example/cert.pem"},
    ):
        header = {"alg": "RS256", "kid": RSA_KID, **extra}
        reject(token(header, claims(), "RS256", attacker), InvalidSignatureError)
        header["kid"] = "attacker"
        reject(token(header, claims(), "RS256", attacker), UnknownKeyError)


def test_18_tampering() -> None:
    good = rs256(claims())
    head, payload, sig = good.split(".")
    forged_payload = part(claims(sub="admin"))
    flipped = sig[:10] + ("A" if sig[10] != "A" else "B") + sig[11:]
    for tok in (
        f"{head}.{forged_payload}.{sig}",
        f"{head}.{payload}.{flipped}",
        f"{head}.{payload}.",
        f"{head}.{payload}",
        f"{good}.{sig}",
        f"{good}.",
    ):
        reject(tok)


def test_19_json_serialization() -> None:
    head, payload, sig = rs256(claims()).split(".")
    flattened = json.dumps({"payload": payload, "protected": head, "signature": sig})
    general = json.dumps(
        {"payload": payload, "signatures": [{"protected": head, "signature": sig}]}
    )
    for tok in (flattened, general):
        assert reject(tok, InvalidTokenError) == "invalid_token"


@pytest.mark.parametrize("payload", [b'"string"', b"[1]", b"1", b"null", b"not json"])
def test_20_payload_not_an_object(payload: bytes) -> None:
    tok = token({"alg": "RS256", "kid": RSA_KID}, payload, "RS256", rsa_private())
    assert reject(tok, InvalidTokenError) == "invalid_token"


def test_21_typ_confusion() -> None:
    for typ in ("JWT", None):
        header = {"alg": "RS256", "kid": RSA_KID} | ({"typ": typ} if typ else {})
        tok = token(header, claims(), "RS256", rsa_private())
        reject(tok, WrongTypeError, typ="at+jwt")
    for typ in ("at+jwt", "at+JWT", "application/at+jwt"):
        assert verifier(typ="at+jwt").verify(rs256(claims(), typ=typ))


STEP_UP_POLICY = """
policy: records
target: {resources: [doc], actions: [read]}
rules:
  - id: need-acr
    effect: step_up
    when: "subject.properties.acr != 'myACR'"
    step_up: {acr_values: [myACR]}
  - id: need-recent-login
    effect: step_up
    when: "int(now) - subject.properties.auth_time > 5"
    step_up: {max_age: 5}
  - id: allow
    effect: allow
"""


def test_22_step_up_inputs_reach_the_policies() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": STEP_UP_POLICY}, clock=lambda: NOW)

    def decide(tok: str) -> Any:
        request = {
            "subject": {"token": tok},
            "action": {"name": "read"},
            "resource": {"type": "doc", "id": "d1"},
        }
        return pdp.evaluate(verify_request(request, jwt_verifier=verifier(), now=NOW))

    weak = decide(rs256(claims(acr="urn:low", auth_time=T - 3600)))
    assert weak.effect is Effect.STEP_UP
    assert weak.step_up is not None
    assert (weak.step_up.acr_values, weak.step_up.max_age) == (("myACR",), 5)
    assert decide(rs256(claims(acr="myACR", auth_time=T - 2))).effect is Effect.ALLOW


@pytest.mark.parametrize("value", [2**63, -(2**63) - 1, 10**30])
def test_integers_beyond_64_bits_are_refused(value: int) -> None:
    # They would pass request validation and then overflow the CEL backends.
    assert reject(rs256(claims(big=value)), InvalidTokenError) == "invalid_token"
    assert verifier().verify(rs256(claims(big=2**63 - 1))).properties["big"] == 2**63 - 1


def test_duplicate_json_members_are_refused() -> None:
    body = json.dumps(claims())[:-1] + ', "sub": "admin"}'
    tok = token({"alg": "RS256", "kid": RSA_KID}, body.encode(), "RS256", rsa_private())
    assert reject(tok, InvalidTokenError) == "invalid_token"
