"""PolicyDecisionPoint(identity=...): only verified credentials name the subject."""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
from jwt_helpers import KEYS, NOW, claims, rs256, verifier

from zerotrust import AccessRequest, Effect, IdentityError, PolicyDecisionPoint, RequestError
from zerotrust.identity import IdentityResolver

if not KEYS.is_dir():
    pytest.skip(f"shared conformance keys not found at {KEYS}", allow_module_level=True)

POLICY = """
policy: p
rules:
  - id: allow-purchasers
    effect: allow
    when: "'purchase' in subject.properties.scopes && !device.verified"
"""


def pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts(
        {"p.yaml": POLICY},
        clock=lambda: NOW,
        identity=IdentityResolver(jwt=verifier()),
        behavior=None,
    )


def request(subject: dict[str, Any]) -> dict[str, Any]:
    return {"subject": subject, "action": {"name": "buy"}, "resource": {"type": "cart"}}


def test_a_verified_token_becomes_the_subject() -> None:
    d = pdp().evaluate(request({"token": rs256(claims())}))
    assert d.effect is Effect.ALLOW


def test_a_caller_asserted_subject_is_refused() -> None:
    with pytest.raises(IdentityError):
        pdp().evaluate(
            request({"id": "someone@example.net", "properties": {"scopes": ["purchase"]}})
        )
    with pytest.raises(IdentityError):
        pdp().evaluate(AccessRequest.from_mapping(request({"id": "x"})))


@pytest.mark.parametrize(
    "tok",
    [
        rs256(claims(exp=int(NOW.timestamp()) - 3600)),
        rs256(claims(aud="https://elsewhere.example")),
        rs256(claims())[:-4] + "AAAA",
        "not.a.token",
    ],
    ids=["expired", "wrong-audience", "bad-signature", "garbage"],
)
def test_bad_tokens_never_reach_policies(tok: str) -> None:
    with pytest.raises(IdentityError) as info:
        pdp().evaluate(request({"token": tok}))
    assert tok not in str(info.value)


def test_many_verifies_everything_first() -> None:
    engine = pdp()
    good = request({"token": rs256(claims())})
    with pytest.raises(IdentityError):
        engine.evaluate_many([good, request({"token": "garbage"})])
    assert [d.effect for d in engine.evaluate_many([good, good])] == [Effect.ALLOW] * 2


def test_async_path_verifies_too() -> None:
    engine = pdp()
    d = asyncio.run(engine.evaluate_async(request({"token": rs256(claims())})))
    assert d.allowed
    with pytest.raises(IdentityError):
        asyncio.run(engine.evaluate_async(request({"id": "x"})))


def test_clock_is_the_pdps() -> None:
    later = NOW + datetime.timedelta(hours=2)
    engine = PolicyDecisionPoint.from_texts(
        {"p.yaml": POLICY},
        clock=lambda: later,
        identity=IdentityResolver(jwt=verifier(clock=lambda: later)),
        behavior=None,
    )
    with pytest.raises(IdentityError, match="expired"):
        engine.evaluate(request({"token": rs256(claims())}))


class _RaisingMapping(Mapping[str, Any]):
    """A caller's own Mapping whose code raises while it is read."""

    def __getitem__(self, key: str) -> Any:
        raise RuntimeError("boom")

    def __iter__(self) -> Iterator[str]:
        raise RuntimeError("boom")

    def __len__(self) -> int:
        return 1


class _TokenThatLies(str):
    """A str subclass whose overridden methods would change what is verified."""

    def split(self, *args: Any, **kwargs: Any) -> list[str]:  # type: ignore[override]
        raise RuntimeError("override called")

    def encode(self, *args: Any, **kwargs: Any) -> bytes:  # type: ignore[override]
        raise RuntimeError("override called")


@pytest.mark.parametrize("run", ["sync", "async"])
def test_caller_mapping_that_raises_during_identity_resolution_is_a_request_error(
    run: str,
) -> None:
    engine = pdp()
    bad = {"subject": _RaisingMapping(), "action": {"name": "buy"}, "resource": {"type": "cart"}}
    with pytest.raises(RequestError, match="subject"):
        if run == "sync":
            engine.evaluate(bad)
        else:
            asyncio.run(engine.evaluate_async(bad))


def test_token_str_subclass_is_verified_as_its_plain_text() -> None:
    d = pdp().evaluate(request({"token": _TokenThatLies(rs256(claims()))}))
    assert d.effect is Effect.ALLOW


def test_lone_surrogate_beside_a_token_is_refused_before_verification() -> None:
    with pytest.raises(RequestError, match="lone surrogate"):
        pdp().evaluate({**request({"token": rs256(claims())}), "context": {"note": "\ud800"}})
