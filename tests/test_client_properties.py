"""Properties of the client's reading of answers: a body that is not a valid AuthZEN
evaluation response (section 6.2, evaluation-response.schema.json) raises
PDPResponseError, never returns an allow; a valid one allows only when its
``decision`` is ``true``. Checked on the parser and over real HTTP, sync and async."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from client_stubs import JSON, Answer, StubPDP
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strategies import json_values

from zerotrust import AccessRequest, Effect
from zerotrust.client import AsyncAuthZENClient, AuthZENClient, PDPResponseError
from zerotrust.client._convert import decision_of, parse_json

REQUEST = AccessRequest.from_mapping(
    {"subject": {"id": "ann"}, "action": {"name": "read"}, "resource": {"type": "doc", "id": "1"}}
)

_EFFECTS = st.sampled_from(["allow", "deny", "step_up", "permit", "", "ALLOW"]) | json_values(3)
_ZEROTRUST_CONTEXT = st.fixed_dictionaries(
    {"effect": _EFFECTS},
    optional={
        "decision_id": st.text(max_size=8) | json_values(2),
        "reasons": st.lists(
            st.fixed_dictionaries(
                {"rule": st.text(max_size=6) | json_values(2), "effect": _EFFECTS}
            )
            | json_values(3),
            max_size=3,
        )
        | json_values(3),
        "obligations": st.lists(
            st.fixed_dictionaries(
                {"type": st.text(max_size=6)}, optional={"fields": json_values(3)}
            )
            | json_values(3),
            max_size=2,
        )
        | json_values(3),
        "risk": st.fixed_dictionaries(
            {}, optional={"score": st.integers() | json_values(2), "signals": json_values(3)}
        )
        | json_values(2),
        "acr_values": st.sampled_from(["urn:x:loa:2", "a b", 'bad"q', ""]) | json_values(2),
        "max_age": st.integers(min_value=-5, max_value=2**32) | json_values(2),
        "policy_revision": st.text(max_size=8) | json_values(2),
    },
)
_CONTEXT = st.none() | _ZEROTRUST_CONTEXT | json_values(6)
#: Bodies near the shape of an answer, and anything else JSON can be.
BODIES = (
    st.fixed_dictionaries(
        {"decision": st.booleans() | json_values(3)},
        optional={"context": _CONTEXT, "extra": json_values(3)},
    )
    | st.fixed_dictionaries({}, optional={"context": _CONTEXT, "evaluations": json_values(3)})
    | json_values(8)
)


def schema_valid(body: Any) -> bool:
    """evaluation-response.schema.json: an object, a boolean ``decision``, and a
    ``context`` that is an object when present (``null`` counts as absent, as the
    server reads a null)."""
    return (
        type(body) is dict
        and type(body.get("decision")) is bool
        and (body.get("context") is None or type(body.get("context")) is dict)
    )


def check(body: Any, read: Any) -> None:
    """What reading ``body`` may give: an error naming it invalid, or a Decision that
    allows only a valid ``true``."""
    try:
        decision = read()
    except PDPResponseError:
        return
    assert schema_valid(body), f"an invalid body gave a decision: {body!r}"
    if decision.allowed:
        assert body["decision"] is True and decision.effect is Effect.ALLOW
    else:
        assert body["decision"] is False


@settings(max_examples=600, deadline=None)
@given(BODIES)
def test_an_invalid_body_never_gives_a_decision(body: Any) -> None:
    check(body, lambda: decision_of(body))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64) | BODIES.map(lambda b: json.dumps(b).encode()))
def test_any_bytes_are_an_error_or_a_decision_they_support(raw: bytes) -> None:
    try:
        body = parse_json(raw, "evaluation")
    except PDPResponseError:
        return
    check(body, lambda: decision_of(body))


class Holder:
    """The body the stub answers with next (set by each hypothesis example)."""

    body: bytes = b"{}"


@pytest.fixture(scope="module")
def stub() -> Iterator[tuple[StubPDP, Holder]]:
    holder = Holder()

    def respond(method: str, path: str, _: bytes) -> Answer:
        return 200, JSON, holder.body

    server = StubPDP(respond)
    try:
        yield server, holder
    finally:
        server.close()


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(body=BODIES)
def test_over_http_an_invalid_answer_never_allows(stub: tuple[StubPDP, Holder], body: Any) -> None:
    server, holder = stub
    holder.body = json.dumps(body).encode()

    async def run_async() -> Any:
        async with AsyncAuthZENClient(server.url, discover=False) as c:
            return await c.evaluate_async(REQUEST)

    with AuthZENClient(server.url, discover=False) as c:
        check(body, lambda: c.evaluate(REQUEST))
    check(body, lambda: asyncio.run(run_async()))
