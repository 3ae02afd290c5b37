"""Property tests: nothing random verifies, and nothing but IdentityError escapes."""

from __future__ import annotations

import json
from typing import Any

import pytest
import strategies
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jwt_helpers import NOW, RSA_KID, b64u, claims, needs_keys, part, rs256, rsa_private, token
from jwt_helpers import verifier as make_verifier

from zerotrust.errors import IdentityError, RequestError
from zerotrust.identity import JWTVerifier, verify_request

pytestmark = needs_keys
FUZZ = settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

json_values = strategies.json_values(8)
registered = st.sampled_from(
    ["alg", "kid", "typ", "crit", "jwk", "jku", "x5u", "x5c", "b64", "cty", "zip", "enc"]
)
algs = st.sampled_from(
    ["none", "None", "NONE", "RS256", "HS256", "ES256", "PS256", "EdDSA", "RS1", "", "ES521"]
)
headers = st.dictionaries(registered | st.text(max_size=8), json_values, max_size=6)
payloads = st.dictionaries(
    st.sampled_from(["iss", "sub", "aud", "exp", "nbf", "iat", "amr", "acr", "roles"])
    | st.text(max_size=8),
    json_values,
    max_size=8,
)


@pytest.fixture(scope="module")
def verifier() -> JWTVerifier:
    return make_verifier()


def _refused(v: JWTVerifier, tok: Any) -> None:
    with pytest.raises(IdentityError):
        v.verify(tok)
    with pytest.raises(IdentityError):
        v.verify_signature(tok)


@FUZZ
@given(data=st.binary(max_size=600))
def test_random_bytes_never_verify(verifier: JWTVerifier, data: bytes) -> None:
    _refused(verifier, data)
    _refused(verifier, data.decode("latin-1"))


@FUZZ
@given(parts=st.lists(st.binary(max_size=80), min_size=1, max_size=5))
def test_random_base64url_parts_never_verify(verifier: JWTVerifier, parts: list[bytes]) -> None:
    _refused(verifier, ".".join(b64u(p) for p in parts))


@FUZZ
@given(header=headers, payload=payloads, alg=algs, signature=st.binary(max_size=300))
def test_random_json_tokens_never_verify(
    verifier: JWTVerifier,
    header: dict[str, Any],
    payload: dict[str, Any],
    alg: str,
    signature: bytes,
) -> None:
    header.setdefault("alg", alg)
    _refused(verifier, f"{part(header)}.{part(payload)}.{b64u(signature)}")


@FUZZ
@given(header=headers, payload=payloads)
def test_correctly_signed_random_claims_never_yield_a_subject(
    verifier: JWTVerifier, header: dict[str, Any], payload: dict[str, Any]
) -> None:
    header.update({"alg": "RS256", "kid": RSA_KID})
    tok = token(header, payload, "RS256", rsa_private())
    with pytest.raises(IdentityError):
        verifier.verify(tok)


@FUZZ
@given(data=st.data())
def test_any_single_character_change_is_refused(verifier: JWTVerifier, data: Any) -> None:
    good = rs256(claims())
    index = data.draw(st.integers(0, len(good) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.= ?"
    replacement = data.draw(st.sampled_from(alphabet).filter(lambda c: c != good[index]))
    _refused(verifier, good[:index] + replacement + good[index + 1 :])


@FUZZ
@given(subject=json_values, device=json_values)
def test_resolver_raises_only_library_errors(
    verifier: JWTVerifier, subject: Any, device: Any
) -> None:
    request = {"subject": subject, "device": device, "action": {"name": "read"}}
    try:
        out = verify_request(request, jwt_verifier=verifier, now=NOW)
    except (IdentityError, RequestError):
        return
    raise AssertionError(f"resolved an unverifiable request: {json.dumps(out)[:200]}")
