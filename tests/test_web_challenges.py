"""RFC 9470 / RFC 6750 challenges and RFC 9457 problem bodies, checked against the RFC text."""

from __future__ import annotations

import json
import re

import pytest
from conftest import SHARED

from zerotrust import StepUp, StepUpError
from zerotrust.web import bearer_challenge, parse_challenges, problem_body, step_up_challenge

EXAMPLES = SHARED / "rfc9470" / "rfc9470-examples.txt"
needs_examples = pytest.mark.skipif(not EXAMPLES.is_file(), reason="RFC 9470 examples missing")


def _figures() -> list[str]:
    """The WWW-Authenticate values of RFC 9470 figures 2 and 3, unfolded."""
    text = EXAMPLES.read_text()
    found = re.findall(r"WWW-Authenticate: (.*?)\n\n", text, flags=re.S)
    return [" ".join(line.strip() for line in f.splitlines()) for f in found]


@needs_examples
def test_parser_reads_the_rfc_9470_examples() -> None:
    fig2, fig3 = _figures()
    [c2] = parse_challenges(fig2)
    assert c2.scheme == "bearer"
    assert c2.params == {
        "error": "insufficient_user_authentication",
        "error_description": "A different authentication level is required",
        "acr_values": "myACR",
    }
    [c3] = parse_challenges(fig3)
    assert c3.params["max_age"] == "5"


@needs_examples
def test_rendered_challenges_equal_the_rfc_examples() -> None:
    fig2, fig3 = _figures()
    assert step_up_challenge(StepUp(acr_values=("myACR",))) == fig2
    assert step_up_challenge(StepUp(max_age=5)) == fig3


def test_step_up_with_both_parameters_round_trips() -> None:
    header = step_up_challenge(
        StepUp(acr_values=("urn:example:loa:2", "urn:example:loa:3"), max_age=300), realm="api"
    )
    [c] = parse_challenges(header)
    assert c.params == {
        "realm": "api",
        "error": "insufficient_user_authentication",
        "error_description": "A different authentication level is required",
        "acr_values": "urn:example:loa:2 urn:example:loa:3",
        "max_age": "300",
    }


def test_description_and_values_cannot_break_out_of_quotes() -> None:
    with pytest.raises(StepUpError):  # acr values are checked where a StepUp is built
        StepUp(acr_values=('a"b', "c\\d", "ok"))
    header = step_up_challenge(StepUp(acr_values=("ok",)), description='say "hi"\r\nX-Injected: 1')
    [c] = parse_challenges(header)
    assert c.params["acr_values"] == "ok"
    assert "\n" not in header and "\r" not in header
    assert c.params["error_description"] == "say  hi   X-Injected: 1"


def test_bearer_challenges_per_rfc_6750() -> None:
    assert bearer_challenge(None) == "Bearer"
    assert bearer_challenge(None, realm="api") == 'Bearer realm="api"'
    [c] = parse_challenges(bearer_challenge("invalid_token", description="expired"))
    assert c.params == {"error": "invalid_token", "error_description": "expired"}


def test_parser_handles_several_challenges_and_token68() -> None:
    found = parse_challenges('Negotiate, Basic abc123==, Bearer realm="a\\"b", error=invalid_token')
    assert [c.scheme for c in found] == ["negotiate", "basic", "bearer"]
    assert found[1].token68 == "abc123=="
    assert found[2].params == {"realm": 'a"b', "error": "invalid_token"}
    with pytest.raises(ValueError):
        parse_challenges('Bearer error="a", error="b"')


def test_problem_body_is_rfc_9457() -> None:
    doc = json.loads(problem_body(403, detail="no", code="access_denied", decision_id="d-1"))
    assert doc == {
        "type": "about:blank",
        "title": "Forbidden",
        "status": 403,
        "detail": "no",
        "code": "access_denied",
        "decision_id": "d-1",
    }
    typed = json.loads(problem_body(401, detail="x", code="c", type_base="https://e.test/p/"))
    assert typed["type"] == "https://e.test/p/c"
