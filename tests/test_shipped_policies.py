"""The shipped customer-data policies in policies/, checked through the Python API.

The key behaviours are asserted here directly, independently of the YAML suites; the last
tests run the suites with a small reader of our own and check that together they exercise
every rule and every signal of the set.
"""

from __future__ import annotations

import copy
import datetime
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from zerotrust import AccessRequest, Decision, Effect, PolicyDecisionPoint, PolicySet

ROOT = Path(__file__).resolve().parents[1]
POLICIES = ROOT / "policies"
REQUESTS = ROOT / "examples" / "requests"
MONDAY_11_BERLIN = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)


class FixedBehavior:
    """A behaviour source that returns the features it was given and records nothing."""

    def __init__(self, features: Mapping[str, Any]) -> None:
        self._features = dict(features)

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        return self._features

    def record(self, request: AccessRequest, decision: Decision) -> None:
        return None


@pytest.fixture(scope="module")
def policies() -> PolicySet:
    return PolicyDecisionPoint.from_path(POLICIES).policies


def decide(
    policies: PolicySet,
    request: Mapping[str, Any],
    *,
    behavior: Mapping[str, Any] | None = None,
    now: datetime.datetime = MONDAY_11_BERLIN,
    explain: bool = False,
) -> Decision:
    pdp = PolicyDecisionPoint(policies, clock=lambda: now, behavior=FixedBehavior(behavior or {}))
    return pdp.evaluate(request, explain=explain)


def agent_read(**changes: Any) -> dict[str, Any]:
    """A support agent, password only, reading an internal record of their department
    from a managed laptop in the office; ``changes`` replace whole sections."""
    request: dict[str, Any] = {
        "subject": {
            "id": "u-anna",
            "properties": {"department": "support", "roles": ["agent"], "amr": ["pwd"]},
        },
        "action": {"name": "read"},
        "resource": {
            "type": "customer_record",
            "id": "c-1001",
            "properties": {"owner_dept": "support", "sensitivity": 2},
        },
        "device": {"id": "d-17", "managed": True, "compliant": True},
        "context": {"ip": "10.1.2.3", "country": "DE"},
    }
    request.update(changes)
    return request


def rules_of(decision: Decision) -> set[str]:
    return {r.rule for r in decision.reasons}


# --- key behaviours ---------------------------------------------------------------------


def test_own_department_is_allowed_with_card_and_ssn_masked(policies: PolicySet) -> None:
    decision = decide(policies, agent_read())
    assert decision.effect is Effect.ALLOW
    assert rules_of(decision) == {"customer-records/allow-agent-own-department"}
    assert [(o.type, sorted(o.params["fields"])) for o in decision.obligations] == [
        ("mask", ["card_number", "ssn"])
    ]
    assert decision.risk.score == 0
    assert decision.errors == ()


def test_other_department_is_denied(policies: PolicySet) -> None:
    record = {"type": "customer_record", "id": "c-9", "properties": {"owner_dept": "billing"}}
    decision = decide(policies, agent_read(resource=record))
    assert decision.effect is Effect.DENY
    assert "customer-records/deny-other-department" in rules_of(decision)
    assert decision.obligations == ()
    assert decision.step_up is None


def test_confidential_record_without_mfa_steps_up(policies: PolicySet) -> None:
    record = {
        "type": "customer_record",
        "id": "c-3",
        "properties": {"owner_dept": "support", "sensitivity": 3},
    }
    decision = decide(policies, agent_read(resource=record))
    assert decision.effect is Effect.STEP_UP
    assert decision.step_up is not None
    assert decision.step_up.acr_values == ("urn:example:loa:2",)
    assert decision.step_up.max_age == 3600
    assert decision.obligations == ()


def test_confidential_record_with_mfa_is_allowed(policies: PolicySet) -> None:
    subject = {
        "id": "u-anna",
        "properties": {"department": "support", "roles": ["agent"], "amr": ["pwd", "mfa"]},
    }
    record = {
        "type": "customer_record",
        "id": "c-3",
        "properties": {"owner_dept": "support", "sensitivity": 3},
    }
    assert decide(policies, agent_read(subject=subject, resource=record)).allowed


def test_restricted_record_without_mfa_merges_both_step_ups(policies: PolicySet) -> None:
    record = {
        "type": "customer_record",
        "id": "c-4",
        "properties": {"owner_dept": "support", "sensitivity": 4},
    }
    decision = decide(policies, agent_read(resource=record))
    assert decision.step_up is not None
    assert decision.step_up.acr_values == ("urn:example:loa:2", "urn:example:loa:3")
    assert decision.step_up.max_age == 300


def test_insider_bulk_reading_is_denied(policies: PolicySet) -> None:
    mfa = {
        "id": "u-eve",
        "properties": {"department": "support", "roles": ["agent"], "amr": ["pwd", "mfa"]},
    }
    decision = decide(
        policies, agent_read(subject=mfa), behavior={"records_1h": 1500, "records_24h": 1600}
    )
    assert decision.effect is Effect.DENY
    assert "bulk-access/deny-bulk-reading" in rules_of(decision)
    assert "high-volume" in decision.risk.signals


def test_high_risk_is_denied_even_with_mfa(policies: PolicySet) -> None:
    mfa = {
        "id": "u-anna",
        "properties": {"department": "support", "roles": ["agent"], "amr": ["pwd", "mfa"]},
    }
    request = agent_read(
        subject=mfa,
        device={"id": "d-x", "managed": False},
        context={"ip": "198.51.100.4", "country": "BR"},
    )
    decision = decide(policies, request)
    assert decision.risk.score >= 80
    assert decision.effect is Effect.DENY
    assert "customer-risk/deny-high-risk" in rules_of(decision)
    matched_trials = {r.rule for r in decision.report_only if r.matched}
    assert matched_trials == {"customer-risk/try-deny-risk-60"}


def test_off_hours_is_judged_in_berlin_time(policies: PolicySet) -> None:
    berlin_19_30 = datetime.datetime(2026, 3, 2, 18, 30, tzinfo=datetime.UTC)
    berlin_20_30 = datetime.datetime(2026, 3, 2, 19, 30, tzinfo=datetime.UTC)
    assert decide(policies, agent_read(), now=berlin_19_30).risk.signals == ()
    assert decide(policies, agent_read(), now=berlin_20_30).risk.signals == ("off-hours",)


def test_export_needs_a_manager_and_tokenizes_email(policies: PolicySet) -> None:
    manager = {
        "id": "u-max",
        "properties": {"department": "support", "roles": ["manager"], "amr": ["pwd", "mfa"]},
    }
    export = {"name": "export"}
    context = {"ip": "10.1.2.40", "country": "DE", "records": 500, "ticket": "OPS-1"}
    allowed = decide(policies, agent_read(subject=manager, action=export, context=context))
    assert allowed.effect is Effect.ALLOW
    tokenize = [o for o in allowed.obligations if o.type == "tokenize"]
    assert tokenize
    assert "email" in tokenize[0].params["fields"]

    refused = decide(policies, agent_read(action=export, context=context))
    assert refused.effect is Effect.DENY
    assert "customer-exports/deny-export-without-manager-role" in rules_of(refused)


def test_empty_behaviour_is_safe(policies: PolicySet) -> None:
    """Without a behaviour store no behaviour rule applies and none errors."""
    for behavior in ({}, {"available": False}):
        decision = decide(policies, agent_read(), behavior=behavior)
        assert decision.effect is Effect.ALLOW
        assert decision.errors == ()
        assert decision.risk.score == 0


@pytest.mark.parametrize(
    ("name", "effect"),
    [
        ("agent-read.json", Effect.ALLOW),
        ("confidential-read-without-mfa.json", Effect.STEP_UP),
        ("other-department-read.json", Effect.DENY),
        ("manager-export.json", Effect.ALLOW),
    ],
)
def test_example_requests(policies: PolicySet, name: str, effect: Effect) -> None:
    request = json.loads((REQUESTS / name).read_text(encoding="utf-8"))
    assert decide(policies, request).effect is effect


# --- the YAML suites, read independently of zerotrust.testing ----------------------------


def _merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    """The suites' defaults rule: dicts merge recursively, anything else replaces."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _unset(base: Mapping[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """The suites' ``unset`` rule: dotted paths removed from the defaults, before the
    case's own values are merged in."""
    out = copy.deepcopy(dict(base))
    for path in paths:
        *parents, last = path.split(".")
        node = out
        for part in parents:
            node = node[part]
        del node[last]
    return out


def _now(value: Any) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(value)


def suite_cases() -> list[tuple[str, dict[str, Any]]]:
    cases = []
    for path in sorted(POLICIES.glob("*_test.yaml")):
        for suite in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if suite is None:
                continue
            defaults = suite.get("defaults") or {}
            for case in suite["cases"]:
                merged = _merge(_unset(defaults, case.get("unset") or ()), case)
                cases.append((f"{path.name}: {merged['name']}", merged))
    return cases


@pytest.fixture(scope="module")
def suite_decisions(policies: PolicySet) -> list[tuple[str, dict[str, Any], Decision]]:
    return [
        (
            name,
            case,
            decide(
                policies,
                case["request"],
                behavior=case.get("behavior") or {},
                now=_now(case["now"]),
                explain=True,
            ),
        )
        for name, case in suite_cases()
    ]


def test_suites_hold_enough_cases() -> None:
    assert len(suite_cases()) >= 30


def test_suites_give_their_expected_effects(
    suite_decisions: list[tuple[str, dict[str, Any], Decision]],
) -> None:
    wrong = [
        f"{name}: expected {case['expect']['effect']}, got {decision.effect.value}"
        for name, case, decision in suite_decisions
        if decision.effect.value != case["expect"]["effect"]
    ]
    assert wrong == []


def test_every_rule_and_signal_is_exercised(
    policies: PolicySet, suite_decisions: list[tuple[str, dict[str, Any], Decision]]
) -> None:
    declared = {r.ref for p in policies.policies for r in p.rules} | {
        s.ref for p in policies.policies for s in p.signals
    }
    matched = {
        entry.rule
        for _, _, decision in suite_decisions
        for entry in decision.explain
        if entry.outcome == "matched"
    }
    assert sorted(declared - matched) == []
    assert any(rules_of(d) == {"default-deny"} for _, _, d in suite_decisions)
    effects = {d.effect for _, _, d in suite_decisions}
    assert effects == {Effect.ALLOW, Effect.DENY, Effect.STEP_UP}


def test_the_set_has_report_only_rules(policies: PolicySet) -> None:
    trials = [r.ref for p in policies.policies for r in p.rules if r.report_only]
    assert len(trials) >= 2
