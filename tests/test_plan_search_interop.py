"""The AuthZEN search scenario's resource searches through plans: the records a plan
allows are the expected results, and the plan is a filter (the policies read records
through ``data.entities.resources.record[resource.id]``, enumerated over its keys)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_server_http import INTEROP, load

from zerotrust.engine import PolicyDecisionPoint
from zerotrust.plan import PlanKind

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "authzen-search"
SEARCH = INTEROP / "authzen-search-demo" / "test" / "resource" / "results.json"

if not SEARCH.is_file():
    pytest.skip(f"AuthZEN interop data not found at {INTEROP}", allow_module_level=True)

CASES = load(SEARCH)["evaluation"]


@pytest.fixture(scope="module")
def pdp() -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_path(EXAMPLE, behavior=None)


def test_there_are_18_resource_searches() -> None:
    assert len(CASES) == 18


@pytest.mark.parametrize("case", CASES)
def test_resource_search_through_a_plan(pdp: PolicyDecisionPoint, case: Any) -> None:
    plan = pdp.plan(case["request"])
    assert plan.not_expressible is None
    records = pdp.policies.data["entities"]["resources"]["record"]
    found = [
        {"type": "record", "id": rid}
        for rid, properties in records.items()
        if plan.matches({"id": rid, "properties": properties})
    ]
    assert found == case["expected"]["results"]
    if not found:
        assert plan.kind is PlanKind.ALWAYS_DENIED
