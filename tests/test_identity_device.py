"""Device attestations and the request resolver, up to a PolicyDecisionPoint decision."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from jwt_helpers import NOW, T, claims, needs_keys, read, rs256, token, verifier

from zerotrust import AccessRequest, Effect, PolicyDecisionPoint
from zerotrust.errors import IdentityError, RequestError
from zerotrust.identity import (
    DeviceVerifier,
    ExpiredTokenError,
    IdentityResolver,
    InvalidClaimError,
    Issuer,
    MissingClaimError,
    MissingTokenError,
    NotConfiguredError,
    StaleAttestationError,
    StaticKeys,
    SubjectMismatchError,
    UnknownKeyError,
    UntrustedIssuerError,
    WrongTypeError,
    load_key,
    unverified_device,
    verify_request,
)

pytestmark = needs_keys
MDM = "https://mdm.example.com"
USER = "someone@example.net"


def mdm_key() -> Any:
    return serialization.load_pem_private_key(read("testkey_ec.priv"), None)


def attestation(typ: str = "device-attestation+jwt", **over: Any) -> str:
    body: dict[str, Any] = {
        "iss": MDM,
        "sub": "dev-42",
        "iat": T - 60,
        "exp": T + 3600,
        "user_sub": USER,
        "managed": True,
        "compliant": True,
        "os": "macOS",
        "os_version": "14.4",
        "disk_encrypted": True,
        "edr_running": True,
        "last_check_in": T - 120,
    }
    for key, value in over.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return token({"alg": "ES256", "kid": "mdm-1", "typ": typ}, body, "ES256", mdm_key())


def device_verifier(**options: Any) -> DeviceVerifier:
    keys = StaticKeys([load_key(read("testkey_ec.pub"), kid="mdm-1")])
    options.setdefault("clock", lambda: NOW)
    return DeviceVerifier(Issuer(MDM, keys), **options)


def test_verified_attestation_gives_posture() -> None:
    device = device_verifier(typ="device-attestation+jwt").verify(attestation(), subject_id=USER)
    assert device == {
        "verified": True,
        "stale": False,
        "id": "dev-42",
        "managed": True,
        "compliant": True,
        "disk_encrypted": True,
        "edr_running": True,
        "os": "macOS",
        "os_version": "14.4",
        "last_check_in": T - 120,
        "issuer": MDM,
        "attested_at": T - 60,
        "age": 60,
    }


def test_absent_posture_flags_are_false() -> None:
    tok = attestation(managed=None, compliant=None, edr_running=None, disk_encrypted=None)
    device = device_verifier().verify(tok, subject_id=USER)
    assert device["verified"] is True
    assert not any(device[f] for f in ("managed", "compliant", "edr_running", "disk_encrypted"))


def test_stale_attestation_rejected_or_marked() -> None:
    old = attestation(iat=T - 7200)
    with pytest.raises(StaleAttestationError) as info:
        device_verifier(max_age=3600).verify(old, subject_id=USER)
    assert info.value.code == "stale_attestation"
    marked = device_verifier(max_age=3600, on_stale="mark").verify(old, subject_id=USER)
    assert marked["stale"] is True and marked["age"] == 7200
    assert marked["managed"] is False and marked["compliant"] is False
    assert marked["attested"]["managed"] is True


def test_attestation_for_another_subject() -> None:
    with pytest.raises(SubjectMismatchError) as info:
        device_verifier().verify(attestation(), subject_id="someone-else")
    assert info.value.code == "subject_mismatch"
    marked = device_verifier(on_subject_mismatch="mark").verify(
        attestation(), subject_id="someone-else"
    )
    assert marked == {**unverified_device(), "subject_mismatch": True}
    with pytest.raises(MissingClaimError):
        device_verifier().verify(attestation(user_sub=None), subject_id=USER)


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"managed": "true"}, InvalidClaimError),
        ({"os": 14}, InvalidClaimError),
        ({"last_check_in": "yesterday"}, InvalidClaimError),
        ({"iat": None}, MissingClaimError),
        ({"exp": None}, MissingClaimError),
        ({"exp": T - 100}, ExpiredTokenError),
        ({"iss": "https://evil.example"}, UntrustedIssuerError),
        ({"typ": "JWT"}, WrongTypeError),
    ],
)
def test_bad_attestations(over: dict[str, Any], error: type[IdentityError]) -> None:
    with pytest.raises(error):
        device_verifier(typ="device-attestation+jwt").verify(attestation(**over), subject_id=USER)


def test_identity_provider_tokens_are_not_attestations() -> None:
    access_token = rs256(claims(managed=True, compliant=True, user_sub=USER))
    with pytest.raises(UnknownKeyError):
        device_verifier().verify(access_token, subject_id=USER)
    with pytest.raises(IdentityError):
        verifier().verify(attestation())


def request(**over: Any) -> dict[str, Any]:
    req: dict[str, Any] = {
        "subject": {"token": rs256(claims())},
        "action": {"name": "read"},
        "resource": {"type": "doc", "id": "d1"},
        "device": {"attestation": attestation(), "ip": "10.1.2.3", "managed": False},
        "context": {"country": "DE"},
    }
    req.update(over)
    return req


def resolver() -> IdentityResolver:
    return IdentityResolver(jwt=verifier(), device=device_verifier())


def test_resolver_builds_a_verified_request() -> None:
    raw = request()
    before = copy.deepcopy(raw)
    out = resolver().resolve(raw, now=NOW)
    assert raw == before
    assert out["subject"]["id"] == USER and out["subject"]["type"] == "user"
    assert out["subject"]["properties"]["acr"] == "myACR"
    assert out["device"]["verified"] is True and out["device"]["managed"] is True
    assert out["device"]["unverified"] == {"ip": "10.1.2.3", "managed": False}
    assert out["context"] == {"country": "DE"}
    assert AccessRequest.from_mapping(out).subject.id == USER


def test_caller_device_claims_are_never_verified() -> None:
    out = resolver().resolve(
        request(device={"managed": True, "compliant": True, "verified": True}), now=NOW
    )
    assert out["device"]["verified"] is False
    assert out["device"]["managed"] is False and out["device"]["compliant"] is False
    assert out["device"]["unverified"] == {"managed": True, "compliant": True, "verified": True}
    assert resolver().resolve(request(device=None), now=NOW)["device"] == unverified_device()


def test_attestation_bound_to_the_token_subject() -> None:
    with pytest.raises(SubjectMismatchError):
        resolver().resolve(request(subject={"token": rs256(claims(sub="mallory"))}), now=NOW)


@pytest.mark.parametrize(
    ("over", "error"),
    [
        ({"subject": {"id": USER}}, MissingTokenError),
        ({"subject": {"token": "x", "id": "admin"}}, RequestError),
        ({"subject": {"token": 7}}, RequestError),
        ({"device": {"attestation": 7}}, RequestError),
        ({"device": "managed"}, RequestError),
        ({"subject": {"token": "not.a.token"}}, IdentityError),
    ],
)
def test_resolver_refusals(over: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        resolver().resolve(request(**over), now=NOW)


def test_missing_verifiers_are_refused() -> None:
    with pytest.raises(NotConfiguredError):
        verify_request(request(), device_verifier=device_verifier(), now=NOW)
    with pytest.raises(NotConfiguredError):
        verify_request(request(), jwt_verifier=verifier(), now=NOW)
    with pytest.raises(RequestError):
        verify_request(["not", "a", "mapping"])  # type: ignore[arg-type]


def test_device_only_resolver_binds_to_the_given_subject() -> None:
    only_device = IdentityResolver(device=device_verifier())
    out = only_device.resolve(request(subject={"id": USER}), now=NOW)
    assert out["subject"] == {"id": USER} and out["device"]["verified"] is True
    with pytest.raises(SubjectMismatchError):
        only_device.resolve(request(subject={"id": "mallory"}), now=NOW)


POLICY = """
policy: records
target: {resources: [doc], actions: [read]}
rules:
  - id: allow-managed
    effect: allow
    when: "device.verified && device.managed && 'reader' in subject.properties.roles"
"""


def test_policies_see_only_verified_data() -> None:
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": POLICY}, clock=lambda: NOW)
    reader = rs256(claims(roles=["reader"]))

    def decide(**over: Any) -> Effect:
        return pdp.evaluate(resolver().resolve(request(**over), now=NOW)).effect

    assert decide(subject={"token": reader}) is Effect.ALLOW
    assert decide(subject={"token": reader}, device={"managed": True}) is Effect.DENY
    assert decide(subject={"token": rs256(claims())}) is Effect.DENY
