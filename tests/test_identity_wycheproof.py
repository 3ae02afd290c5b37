"""Signature-layer conformance: Wycheproof JWS vectors and the PyJWT key-confusion advisory."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from jwt_helpers import JWT_DIR, NOW

from zerotrust.errors import IdentityError
from zerotrust.identity import (
    DEFAULT_ALGORITHMS,
    HMAC_ALGORITHMS,
    AlgorithmNotAllowedError,
    HMACKey,
    IdentityConfigError,
    Issuer,
    JWTVerifier,
    MissingClaimError,
    StaticKeys,
    load_key,
)

WYCHEPROOF = JWT_DIR / "wycheproof" / "testvectors_v1" / "json_web_signature_test.json"
ADVISORY = JWT_DIR / "pyjwt-keys" / "advisory_key_confusion_vectors.json"

# Cases whose expected result no correct verifier can give; each is asserted below.
FILE_DEFECTS = {
    # The token is byte-for-byte tcId 357's, which is valid (the padding was lost upstream).
    367: "same token as tcId 357",
    370: "same token as tcId 357",
    # A '?' inside base64url: RFC 7515 section 2 forbids it, and the MAC covers those bytes.
    372: "'?' in base64url",
    373: "'?' in base64url",
    # RFC 7520 Figure 20 is PS384, but the group's key is pinned to PS256 by its "alg".
    346: "PS384 token for a key pinned to PS256",
    350: "PS384 token for a key pinned to PS256",
    # The group's key says "alg": "ES521", which is not a JOSE algorithm name.
    347: "key alg ES521 is not a JOSE algorithm",
    351: "key alg ES521 is not a JOSE algorithm",
}


def _load(path: Any) -> Any:
    if not path.is_file():
        pytest.skip(f"shared conformance data not found: {path}")
    return json.loads(path.read_text())


def _b64(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _cases() -> list[Any]:
    if not WYCHEPROOF.is_file():
        return [pytest.param(None, None, marks=pytest.mark.skip(reason=f"{WYCHEPROOF} absent"))]
    data = json.loads(WYCHEPROOF.read_text())
    return [
        pytest.param(group, case, id=f"{case['tcId']}-{group['comment']}-{case['comment']}")
        for group in data["testGroups"]
        for case in group["tests"]
    ]


def _issuer(group: dict[str, Any]) -> Issuer:
    """The group's key and algorithm, as an operator would configure them."""
    if "public" in group:
        jwk = group["public"]
        return Issuer("wycheproof", StaticKeys([load_key(jwk)]), algorithms=[jwk["alg"]])
    jwk = group["private"]
    secret = HMACKey(_b64(jwk["k"]), kid=jwk.get("kid"))
    return Issuer("wycheproof", secret, algorithms=[jwk["alg"]])


@pytest.mark.parametrize(("group", "case"), _cases())
def test_wycheproof_signature_layer(group: dict[str, Any], case: dict[str, Any]) -> None:
    jws = case["jws"]
    expected = case["result"]
    tc = case["tcId"]
    try:
        issuer = _issuer(group)
    except IdentityConfigError:
        # An unusable key (use "enc", key_ops without "verify", unknown alg) is refused at
        # configuration, so nothing can verify with it.
        assert expected == "invalid" or tc in FILE_DEFECTS
        return
    verifier = JWTVerifier(issuers=issuer, audiences="aud", clock=lambda: NOW)
    if tc in {372, 373, 346, 350}:
        expected = "invalid"
    elif tc in {367, 370}:
        expected = "valid"
        assert jws == _tc357(group)

    if expected == "valid":
        verified = verifier.verify_signature(jws)
        assert verified.payload == _b64(jws.split(".")[1])
        assert {verified.algorithm} == issuer.allowed_algorithms
    else:
        with pytest.raises(IdentityError) as info:
            verifier.verify_signature(jws)
        assert not jws or jws not in str(info.value)
    # No Wycheproof payload is a claim set, so none may ever yield a subject.
    with pytest.raises(IdentityError):
        verifier.verify(jws)


def _tc357(group: dict[str, Any]) -> str:
    return str(next(c["jws"] for c in group["tests"] if c["tcId"] == 357))


def test_wycheproof_defects_are_the_known_ones() -> None:
    data = _load(WYCHEPROOF)
    comments = {c["tcId"]: c["comment"] for g in data["testGroups"] for c in g["tests"]}
    assert {tc: comments[tc] for tc in FILE_DEFECTS} == {
        367: "invalidBase64Padding",
        370: "invalidBase64PaddingInPayload",
        372: "InvalidCharacterInsertedInHeader",
        373: "InvalidCharacterInsertedInPayload",
        346: "Figure20",
        350: "Figure20",
        347: "Figure27",
        351: "Figure27",
    }


def _advisory_cases() -> list[Any]:
    if not ADVISORY.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"{ADVISORY} absent"))]
    data = json.loads(ADVISORY.read_text())
    return [pytest.param(case, id=case["name"]) for case in data["cases"]]


@pytest.mark.parametrize("case", _advisory_cases())
def test_key_confusion_advisory(case: dict[str, Any]) -> None:
    """GHSA-ffqj-6fqr-9h24: an HS256 token keyed with the public key text must never verify."""
    keys = StaticKeys([case["public_key"]])
    verifier = JWTVerifier(
        issuers=Issuer("advisory", keys),  # every default algorithm: asymmetric only
        audiences="aud",
        clock=lambda: NOW,
    )
    if case["expected"].startswith("valid"):
        verified = verifier.verify_signature(case["token"])
        assert json.loads(verified.payload) == case["payload"]
        with pytest.raises(MissingClaimError):
            verifier.verify(case["token"])  # a signature alone is not an identity
    else:
        with pytest.raises(AlgorithmNotAllowedError):
            verifier.verify_signature(case["token"])
        with pytest.raises(IdentityError):
            verifier.verify(case["token"])


def test_hmac_can_never_join_public_keys() -> None:
    data = _load(ADVISORY)
    keys = StaticKeys([data["cases"][0]["public_key"]])
    with pytest.raises(IdentityConfigError):
        Issuer("advisory", keys, algorithms=DEFAULT_ALGORITHMS | HMAC_ALGORITHMS)
    with pytest.raises(IdentityConfigError):
        Issuer("advisory", keys, algorithms=["HS256"])
