"""A plan's condition holds on a resource exactly when ``evaluate`` allows it.

Random policy sets (tests/plan_strategies.py), random subjects and random resources,
wrong-typed and missing properties included: for every row, the plan (in Python) and the
step-up plan agree with the decision of the request with that row.
"""

from __future__ import annotations

import datetime
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_strategies import plan_request, policy_sets, row_request, rows, subjects

from zerotrust.decision import Effect
from zerotrust.engine import PolicyDecisionPoint
from zerotrust.plan import PlanKind

NOW = datetime.datetime(2026, 3, 2, 10, 0, tzinfo=datetime.UTC)


def _pdp(texts: dict[str, str]) -> PolicyDecisionPoint:
    return PolicyDecisionPoint.from_texts(texts, clock=lambda: NOW, behavior=None)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policy_sets(), subjects(), rows(typed=False))
def test_plan_matches_evaluate_on_every_row(texts, subject, table) -> None:
    pdp = _pdp(texts)
    plan = pdp.plan(plan_request(subject))
    for row in table:
        decision = pdp.evaluate(row_request(subject, row))
        assert plan.matches(row) == decision.allowed, (plan.to_dict()["condition"], row)
        assert plan.decide(row).effect is decision.effect
        if decision.allowed:
            assert plan.obligations_for(row) == decision.obligations
        opened = plan.step_up is not None and plan.step_up_matches(row)
        expected = decision.effect is Effect.STEP_UP and any(
            r.effect is Effect.ALLOW for r in decision.reasons
        )
        assert opened == expected, (plan.to_dict(), row, decision.reasons)
    if plan.kind is PlanKind.ALWAYS_DENIED:
        assert not any(pdp.evaluate(row_request(subject, row)).allowed for row in table)


_ANY_VALUE = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from(["a", "b", ""])),
    lambda inner: st.one_of(
        st.lists(inner, max_size=2), st.dictionaries(st.sampled_from(["a", "b"]), inner, max_size=2)
    ),
    max_leaves=3,
)


@settings(max_examples=300, deadline=None)
@given(
    st.dictionaries(st.sampled_from(["a", "b", "c"]), st.integers(0, 2), max_size=3),
    st.sampled_from(["deny", "allow"]),
    st.lists(st.one_of(st.just(None), _ANY_VALUE), min_size=1, max_size=6),
)
def test_in_a_known_map_means_what_cel_means_on_every_value(
    keys: dict[str, int], effect: str, values: list[object]
) -> None:
    """``x in m`` for a map from the data: its keys, and CEL's error for a key type a map
    cannot have (null, a list, a map), which must fail closed in a deny."""
    condition = "resource.properties.x in data.m"
    rules = "  - {id: all, effect: allow}\n" if effect == "deny" else ""
    texts = {
        "p.yaml": "policy: p\ntarget: {resources: [customer], actions: [read]}\nrules:\n"
        + rules
        + f"  - {{id: r, effect: {effect}, when: '{condition}'}}\n",
        "p.data.yaml": json.dumps({"m": keys}),
    }
    pdp = _pdp(texts)
    plan = pdp.plan(plan_request({"type": "user", "id": "u"}))
    for i, value in enumerate(values):
        row = {"id": f"r{i}", "properties": {} if value is None and i % 2 else {"x": value}}
        decision = pdp.evaluate(row_request({"type": "user", "id": "u"}, row))
        assert plan.matches(row) == decision.allowed, (row, keys)
