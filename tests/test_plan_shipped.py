"""The shipped policies through plans: for every request of their test suites, the plan
agrees with the decision on a table of every kind of record (missing properties too)."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from zerotrust.cel import CompiledBackend
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.plan import PlanKind
from zerotrust.policy.loader import load_path
from zerotrust.testing import StaticBehavior
from zerotrust.testing._suite import Known, read_suite

POLICIES = Path(__file__).resolve().parents[1] / "policies"

_DEPTS = [None, "support", "billing", "sales"]
_SENSITIVITY = [None, 1, 2, 3, 4, 5, "high"]
_VIP = [None, True, False]


def _table() -> list[dict[str, Any]]:
    rows = []
    for i, (dept, level, vip) in enumerate(itertools.product(_DEPTS, _SENSITIVITY, _VIP)):
        properties = {"owner_dept": dept, "sensitivity": level, "vip": vip}
        properties = {k: v for k, v in properties.items() if v is not None}
        rows.append({"id": f"c-{i}", "properties": properties})
    return rows


def _cases() -> list[Any]:
    policies = load_path(POLICIES, CompiledBackend())
    found = []
    for suite in sorted(POLICIES.glob("*_test.yaml")):
        cases, problems = read_suite(suite, Known.of(policies))
        assert not problems
        found += [pytest.param(case, id=f"{suite.stem}::{case.name}") for case in cases]
    return found


@pytest.mark.parametrize("case", _cases())
def test_shipped_policies_plan_as_they_decide(case: Any) -> None:
    now = case.now
    pdp = PolicyDecisionPoint.from_path(
        POLICIES, clock=lambda: now, behavior=StaticBehavior(case.behavior)
    )
    request = dict(case.request)
    resource_type = request["resource"]["type"]
    plan = pdp.plan({**request, "resource": {"type": resource_type}})
    assert plan.not_expressible is None, plan.not_expressible
    for row in _table():
        decision = pdp.evaluate({**request, "resource": {"type": resource_type, **row}})
        assert plan.matches(row) == decision.allowed, (plan.to_dict()["condition"], row)
        if decision.allowed:
            assert plan.obligations_for(row) == decision.obligations
    if plan.kind is PlanKind.CONDITIONAL:
        assert plan.fields
