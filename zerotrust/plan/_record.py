"""A plan as the decision log and the behaviour store see it: one request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from zerotrust.decision import Decision, Effect
from zerotrust.plan._plan import Plan, PlanKind

__all__ = ["plan_record"]


def plan_record(plan: Plan, features: Mapping[str, Any] | None) -> Decision:
    """The plan's record: effect deny when it allows nothing, else allow (the request was
    answered with a filter); no reasons or obligations of its own (they are per row, in
    ``plan``). The log writes it with ``"kind": "plan"`` and the plan as JSON."""
    effect = Effect.DENY if plan.kind is PlanKind.ALWAYS_DENIED else Effect.ALLOW
    record = Decision(
        effect,
        (),
        plan.risk,
        None,
        (),
        (),
        plan.errors,
        plan.policy_revision,
        plan.decision_id,
        plan.evaluated_at,
        behavior=features,
    )
    object.__setattr__(record, "_plan", plan.to_dict)  # frozen: set once, here
    return record
