"""Query plans: which resources of a type a request may read, as a condition a database
can run (``PolicyDecisionPoint.plan``).

:mod:`zerotrust.plan.sqlalchemy` and :mod:`zerotrust.plan.django` turn a plan into a
filter; :mod:`zerotrust.plan.residual` is the condition's node types, for other adapters.
"""

from __future__ import annotations

from zerotrust.plan._plan import (
    NotExpressibleError,
    ObligationBranch,
    Plan,
    PlanKind,
    StepUpPlan,
    UnmappedAttributeError,
)

__all__ = [
    "NotExpressibleError",
    "ObligationBranch",
    "Plan",
    "PlanKind",
    "StepUpPlan",
    "UnmappedAttributeError",
]
