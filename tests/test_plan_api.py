"""``PolicyDecisionPoint.plan``: the request it takes, what it logs and counts, and the
parts of a plan (step-up, obligations, risk, fallbacks) on small readable policies."""

from __future__ import annotations

import asyncio
import datetime
import json
from pathlib import Path
from typing import Any

import pytest

from zerotrust import JsonLinesLog, PolicyDecisionPoint
from zerotrust.behavior.memory import MemoryBehaviorStore
from zerotrust.errors import RequestError
from zerotrust.plan import PlanKind
from zerotrust.plan import residual as r
from zerotrust.plan._planner import MAX_ROW_SIGNALS

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)
POLICY = """
policy: customers
target: {resources: [customer], actions: [read]}
rules:
  - id: own-region
    effect: allow
    when: resource.properties.region == subject.properties.region
    obligations: [{type: mask, fields: [ssn]}]
  - id: managers
    effect: allow
    when: '"manager" in subject.properties.roles && resource.properties.tier != "vip"'
  - id: flagged
    effect: deny
    when: resource.properties.flagged == true
  - id: gold-needs-mfa
    effect: step_up
    when: resource.properties.tier == "gold" && !("mfa" in subject.properties.amr)
    step_up: {acr_values: [mfa]}
"""
ANNA = {"type": "user", "id": "anna", "properties": {"region": "eu", "roles": [], "amr": []}}


def _request(subject: dict[str, Any] = ANNA, **resource: Any) -> dict[str, Any]:
    return {
        "subject": subject,
        "action": {"name": "read"},
        "resource": {"type": "customer", **resource},
    }


def _pdp(text: str = POLICY, **options: Any) -> PolicyDecisionPoint:
    options.setdefault("behavior", None)
    return PolicyDecisionPoint.from_texts({"p.yaml": text}, clock=lambda: NOW, **options)


def _row(rid: str, **properties: Any) -> dict[str, Any]:
    return {"id": rid, "properties": properties}


def test_a_plan_is_a_condition_over_the_resource_with_the_subject_known() -> None:
    plan = _pdp().plan(_request())
    assert plan.kind is PlanKind.CONDITIONAL
    assert plan.not_expressible is None
    assert plan.fields == (
        "resource.properties.flagged",
        "resource.properties.region",
        "resource.properties.tier",
    )
    text = plan.to_dict()["condition"]
    assert 'resource.properties.region == "eu"' in text
    assert "manager" not in text  # the subject's part is decided at plan time
    assert plan.matches(_row("1", region="eu", flagged=False, tier="std"))
    assert not plan.matches(_row("2", region="us", flagged=False, tier="std"))


def test_a_missing_property_in_a_deny_excludes_the_row_fail_closed() -> None:
    plan = _pdp().plan(_request())
    assert not plan.matches(_row("1", region="eu", tier="std"))  # no `flagged`: deny errors
    assert not _pdp().evaluate(_request(**_row("1", region="eu", tier="std"))).allowed


def test_a_missing_property_in_an_allow_does_not_include_the_row() -> None:
    plan = _pdp().plan(_request())
    assert not plan.matches(_row("1", flagged=False, tier="std"))  # no region


def test_the_step_up_plan_names_the_rows_a_step_up_opens_and_its_requirements() -> None:
    plan = _pdp().plan(_request())
    assert plan.step_up is not None
    assert plan.step_up.requirements.acr_values == ("mfa",)
    gold = _row("1", region="eu", flagged=False, tier="gold")
    assert not plan.matches(gold)
    assert plan.step_up_matches(gold)
    assert not plan.step_up_matches(_row("2", region="us", flagged=False, tier="gold"))
    with_mfa = {**ANNA, "properties": {**ANNA["properties"], "amr": ["mfa"]}}
    assert _pdp().plan(_request(with_mfa)).step_up is None


def test_obligations_come_per_branch() -> None:
    manager = {**ANNA, "properties": {**ANNA["properties"], "roles": ["manager"]}}
    plan = _pdp().plan(_request(manager))
    [branch] = plan.obligations
    assert r.to_cel(branch.condition) == 'resource.properties.region == "eu"'
    own = _row("1", region="eu", flagged=False, tier="std")
    other = _row("2", region="us", flagged=False, tier="std")
    assert [o.type for o in plan.obligations_for(own)] == ["mask"]
    assert plan.obligations_for(other) == ()
    assert plan.matches(other)


def test_constant_plans() -> None:
    always = _pdp(
        "policy: p\ntarget: {resources: [customer]}\nrules:\n  - {id: a, effect: allow}\n"
    ).plan(_request())
    assert always.kind is PlanKind.ALWAYS_ALLOWED and always.matches(_row("x"))
    never = _pdp().plan({**_request(), "action": {"name": "delete"}})
    assert never.kind is PlanKind.ALWAYS_DENIED and not never.matches(_row("x"))


@pytest.mark.parametrize(
    "resource",
    [{"id": "c-1"}, {"properties": {"region": "eu"}}, {"id": "c-1", "properties": {}}],
)
def test_a_plan_request_names_the_type_only(resource: dict[str, Any]) -> None:
    with pytest.raises(RequestError, match=r"resource\.type only"):
        _pdp().plan(_request(**resource))


def test_a_plan_is_logged_with_its_own_kind_and_counted_as_one_request(tmp_path: Path) -> None:
    store = MemoryBehaviorStore()
    log = JsonLinesLog(tmp_path / "decisions.jsonl")
    pdp = _pdp(behavior=store, decision_log=log)
    plan = pdp.plan(_request())
    [line] = (tmp_path / "decisions.jsonl").read_text().splitlines()
    record = json.loads(line)
    assert record["kind"] == "plan"
    assert record["decision_id"] == plan.decision_id
    assert record["plan"]["condition"] == plan.to_dict()["condition"]
    assert "ast" not in record["plan"]  # (the text says the same, in half the line)
    assert record["resource"] == {"type": "customer", "id": None}
    pdp.record_access(plan, records=37)
    decision = pdp.evaluate(_request(**_row("c-1", region="eu", flagged=False, tier="std")))
    assert decision.behavior is not None
    assert decision.behavior["requests_1m"] == 2  # the plan and this request
    assert decision.behavior["records_24h"] >= 37
    log.close()


def test_a_decision_record_has_no_plan_kind(tmp_path: Path) -> None:
    log = JsonLinesLog(tmp_path / "d.jsonl")
    _pdp(decision_log=log).evaluate(_request(**_row("c-1", region="eu")))
    log.close()
    record = json.loads((tmp_path / "d.jsonl").read_text())
    assert "kind" not in record and "plan" not in record


def test_plan_async_gives_the_same_plan() -> None:
    pdp = _pdp()
    plan = asyncio.run(pdp.plan_async(_request()))
    assert plan.condition == pdp.plan(_request()).condition


def test_an_unavailable_store_under_deny_mode_allows_nothing() -> None:
    class Broken(MemoryBehaviorStore):
        def features(self, request: Any, now: datetime.datetime) -> Any:
            raise OSError("store down")

    plan = _pdp(behavior=Broken()).plan(_request())
    assert plan.kind is PlanKind.ALWAYS_DENIED


def test_what_a_filter_cannot_hold_falls_back_to_deciding_rows() -> None:
    text = POLICY + (
        "  - id: tagged\n    effect: allow\n"
        "    when: resource.properties.tags.exists(t, t == subject.properties.region)\n"
    )
    pdp = _pdp(text)
    plan = pdp.plan(_request())
    assert plan.not_expressible is not None and "exists" in plan.not_expressible
    table = [
        _row("1", tags=["eu"], flagged=False, tier="std"),
        _row("2", tags=["us"], flagged=False, tier="std"),
        _row("3", region="eu", flagged=False, tier="std"),
    ]
    allowed = plan.allowed_rows(table, lambda row: row)
    assert [row["id"] for row in allowed] == ["1", "3"]
    assert [plan.matches(row) for row in table] == [True, False, True]


def test_risk_from_signals_on_the_resource_is_folded_into_the_condition() -> None:
    text = """
policy: risky
target: {resources: [customer], actions: [read]}
signals:
  - {name: big, score: 50, when: resource.properties.rows > 1000}
  - {name: vip, score: 40, when: resource.properties.tier == "vip"}
rules:
  - {id: a, effect: allow}
  - {id: too-risky, effect: deny, when: risk.score >= 80}
"""
    pdp = _pdp(text)
    plan = pdp.plan(_request())
    assert plan.not_expressible is None
    cases = [
        (_row("1", rows=10, tier="std"), True),
        (_row("2", rows=5000, tier="std"), True),
        (_row("3", rows=5000, tier="vip"), False),
        (_row("4", tier="std"), True),  # `rows` missing: `big` fires (fail closed), 50 < 80
        (_row("5", tier="vip"), False),  # ... and with `vip`, 90
    ]
    for row, allowed in cases:
        assert plan.matches(row) is allowed, row
        assert pdp.evaluate(_request(**row)).allowed is allowed


def test_too_many_signals_on_the_resource_make_risk_rules_not_expressible() -> None:
    signals = "".join(
        f"  - {{name: s{i}, score: 10, when: resource.properties.n{i} == 1}}\n"
        for i in range(MAX_ROW_SIGNALS + 1)
    )
    text = (
        "policy: many\ntarget: {resources: [customer]}\nsignals:\n"
        + signals
        + "rules:\n  - {id: a, effect: allow}\n  - {id: d, effect: deny, when: risk.score > 30}\n"
    )
    pdp = _pdp(text)
    plan = pdp.plan(_request())
    assert plan.not_expressible is not None
    row = _row("1", **{f"n{i}": 1 for i in range(4)})
    assert plan.matches(row) is pdp.evaluate(_request(**row)).allowed is False


def test_a_condition_that_can_never_hold_is_always_denied() -> None:
    """``error && !fires(...)`` selects no row: the plan says so (not "conditional")."""
    subject = {"type": "user", "id": "anna", "properties": {"roles": []}}  # no region
    plan = _pdp().plan(_request(subject))
    assert plan.kind is PlanKind.ALWAYS_DENIED and plan.step_up is None


def test_an_error_at_plan_time_is_kept_and_reported() -> None:
    text = """
policy: p
target: {resources: [customer]}
rules:
  - {id: a, effect: allow, when: 'subject.properties.nope == resource.properties.region'}
"""
    plan = _pdp(text).plan(_request())
    assert plan.kind is PlanKind.ALWAYS_DENIED
    assert [e.rule for e in plan.errors] == ["p/a"]


def test_redacted_request_values_are_hidden_in_the_logged_plan(tmp_path: Path) -> None:
    """The plan's condition holds the subject's values ("eu"): a redacted path hides
    them there too, text and tree alike."""
    log = JsonLinesLog(tmp_path / "d.jsonl", redact=["subject.properties.region"])
    subject = {**ANNA, "properties": {**ANNA["properties"], "region": "eu-secret-region"}}
    plan = _pdp(decision_log=log).plan(_request(subject))
    log.close()
    assert "eu-secret-region" in plan.to_dict()["condition"]
    line = (tmp_path / "d.jsonl").read_text()
    assert "eu-secret-region" not in line
    assert json.loads(line)["plan"]["condition"].count("resource.properties.region") >= 1


SCHEMA = """
validation: permissive
subjects:
  user:
    properties:
      region: {type: string}
      roles: {type: array, items: {type: string}}
      amr: {type: array, items: {type: string}}
      clearance: {type: integer}
    required: [region]
    additionalProperties: false
device:
  properties: {managed: {type: boolean}}
  additionalProperties: false
"""


@pytest.mark.parametrize(
    ("subject_properties", "device", "field"),
    [
        ({"region": "eu", "clearance": 9.5}, {}, "subject.properties.clearance"),
        ({"region": "eu", "nickname": "x"}, {}, "subject.properties"),
        ({"roles": []}, {}, "subject.properties"),
        ({"region": "eu"}, {"managed": "yes"}, "device.managed"),
    ],
)
def test_a_request_evaluate_refuses_under_enforce_gets_no_plan(
    tmp_path: Path, subject_properties: dict[str, Any], device: dict[str, Any], field: str
) -> None:
    """The subject, device and context of a plan's request are checked as a decision's
    are: refused under ``enforce`` (before being counted or logged), reported under
    ``report``."""
    texts = {"p.yaml": POLICY, "attributes.schema.yaml": SCHEMA}
    subject = {"type": "user", "id": "anna", "properties": subject_properties}
    request = {**_request(subject), "device": device}
    row = _row("c-1", region="eu", flagged=False, tier="std")
    with JsonLinesLog(tmp_path / "d.jsonl") as log:
        strict = PolicyDecisionPoint.from_texts(
            texts, clock=lambda: NOW, schema_validation="enforce", decision_log=log
        )
        with pytest.raises(RequestError) as refused:
            strict.plan(request)
        assert field in str(refused.value)
        with pytest.raises(RequestError):
            strict.evaluate({**request, "resource": {"type": "customer", **row}})
    assert (tmp_path / "d.jsonl").read_text() == ""
    reported = PolicyDecisionPoint.from_texts(texts, clock=lambda: NOW, behavior=None)
    plan = reported.plan(request)
    assert [e.kind for e in plan.errors][:1] == ["schema"]  # (reported, not refused)
