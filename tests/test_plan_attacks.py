"""Attacks an outside review made on query plans, each kept as a regression test:
request values in a logged plan, a request the schemas refuse, and ``in`` a known map
with a value no map key can be (null, a list, a map)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from zerotrust import PolicyDecisionPoint, RequestError


def _policy(rules: str, resource: str = "doc", actions: str = "[read]") -> str:
    return f"policy: p\ntarget: {{resources: [{resource}], actions: {actions}}}\nrules:\n{rules}"


ALLOW_ALL_BUT = "  - {{id: all, effect: allow}}\n  - {{id: d, effect: deny, when: '{0}'}}\n"
ALLOW_WHEN = "  - {{id: a, effect: allow, when: '{0}'}}\n"


def _request(subject_props: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "subject": {"type": "user", "id": "u", "properties": subject_props or {}},
        "action": {"name": "read"},
        "resource": {"type": "doc"},
    }


def test_redacted_subject_values_never_reach_a_logged_plan(tmp_path: Path) -> None:
    """A plan's condition holds the subject's values (``owner == "<email>"``); a log
    told to redact ``subject.properties.email`` must not write them in ``plan``."""
    from zerotrust.audit.sinks import JsonLinesLog

    path = tmp_path / "log.jsonl"
    log = JsonLinesLog(
        str(path), redact=["subject.properties.email", "subject.properties.clearance"]
    )
    pdp = PolicyDecisionPoint.from_texts(
        {
            "p.yaml": _policy(
                ALLOW_WHEN.format(
                    "resource.properties.owner == subject.properties.email"
                    " && resource.properties.level <= subject.properties.clearance"
                )
            )
        },
        decision_log=log,
    )
    pdp.plan(_request({"email": "alice.secret@corp.example", "clearance": 7}))
    log.close()
    line = path.read_text()
    entry = json.loads(line)
    assert entry["kind"] == "plan"
    assert entry["request"]["subject"]["properties"]["email"] == "[REDACTED]"  # holds
    assert "alice.secret" not in line, entry["plan"]["condition"]


def test_a_subject_enforce_refuses_gets_no_plan_either() -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {
            "p.yaml": _policy(
                ALLOW_WHEN.format("resource.properties.level <= subject.properties.clearance")
            ),
            "s.schema.yaml": (
                "subjects:\n  user:\n    properties:\n      clearance: {type: integer}\n"
                "    required: [clearance]\n    additionalProperties: false\n"
            ),
        },
        schema_validation="enforce",
    )
    req = _request({"clearance": 9.5, "injected": "x"})
    with pytest.raises(RequestError):
        pdp.evaluate({**req, "resource": {"type": "doc", "id": "1", "properties": {"level": 3}}})
    with pytest.raises(RequestError):
        pdp.plan(req)


@pytest.mark.parametrize("value", [None, [], ["a"], {}, {"a": 1}], ids=repr)
def test_in_a_known_map_keeps_cels_key_type_errors(value: Any) -> None:
    """``x in m`` with ``m`` a known map becomes ``x in ["a"]`` (its keys). CEL errors
    for a key of an unsupported type (null, list, map: "unsupported map key type"), so
    a deny fires in evaluate; ``x in ["a"]`` is plainly false, so ``plan.matches`` (and
    ``obligations_for``, ``step_up_matches``) allow the row. SQL columns never hold such
    values, so the filters are not affected."""
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": _policy(ALLOW_ALL_BUT.format("resource.properties.x in subject.properties.m"))}
    )
    req = _request({"m": {"a": 1}})
    row = {"id": "1", "properties": {"x": value}}
    assert pdp.evaluate({**req, "resource": {"type": "doc", **row}}).allowed is False
    assert pdp.plan(req).matches(row) is False


def test_risk_signals_are_listed_in_policy_order_whatever_reads_the_row() -> None:
    """A signal reading the row listed before one that fires anyway: ``risk.signals[0]``
    must be the first in policy order, as ``evaluate`` lists them."""
    text = """
policy: risky
target: {resources: [doc], actions: [read]}
signals:
  - {name: secret, score: 10, when: resource.properties.secret == true}
  - {name: offhours, score: 10}
rules:
  - {id: a, effect: allow}
  - {id: d, effect: deny, when: 'risk.signals[0] == "secret"'}
"""
    pdp = PolicyDecisionPoint.from_texts({"p.yaml": text})
    request = _request()
    for secret in (True, False):
        row = {"id": "1", "properties": {"secret": secret}}
        decision = pdp.evaluate({**request, "resource": {"type": "doc", **row}})
        assert pdp.plan(request).matches(row) is decision.allowed is (not secret)


@pytest.mark.parametrize("rid", [5, 5.0, True, ["5"]])
def test_a_row_id_that_is_not_a_string_is_refused_as_evaluate_refuses_it(rid: Any) -> None:
    pdp = PolicyDecisionPoint.from_texts(
        {"p.yaml": _policy(ALLOW_ALL_BUT.format('resource.id in ["5"]'))}
    )
    with pytest.raises(RequestError):
        pdp.evaluate({**_request(), "resource": {"type": "doc", "id": rid}})
    with pytest.raises(RequestError, match=r"resource\.id"):
        pdp.plan(_request()).matches({"id": rid, "properties": {}})
