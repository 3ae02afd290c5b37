"""The query plan: which resources of one type a request may read, as a condition."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import attrs

from zerotrust.decision import Decision, Effect, EvaluationError, Obligation, Risk, StepUp
from zerotrust.errors import RequestError, ZeroTrustError
from zerotrust.plan import residual as r

__all__ = [
    "NotExpressibleError",
    "ObligationBranch",
    "Plan",
    "PlanKind",
    "StepUpPlan",
    "UnmappedAttributeError",
    "filter_condition",
]

T = TypeVar("T")


class NotExpressibleError(ZeroTrustError, ValueError):
    """A plan (or part of it) cannot be a database filter: decide rows one by one
    (:meth:`Plan.allowed_rows`), or map what the message names."""


class UnmappedAttributeError(NotExpressibleError):
    """A plan reads an attribute the filter's mapping does not name: raised when the
    filter is built, never dropped (a dropped condition would widen what is allowed)."""

    def __init__(self, path: str, mapped: Iterable[str]) -> None:
        self.path = path
        self.mapped = tuple(sorted(mapped))
        known = ", ".join(self.mapped) or "none"
        super().__init__(f"{path} is not mapped to a column (mapped: {known})")


class PlanKind(enum.StrEnum):
    """What a plan says about every resource of its type (as Cerbos ``PlanResources``)."""

    ALWAYS_ALLOWED = "always_allowed"
    ALWAYS_DENIED = "always_denied"
    CONDITIONAL = "conditional"


@attrs.frozen
class StepUpPlan:
    """The rows a step-up would open: allowed once ``requirements`` are met (their
    decision now is ``step_up`` and an allow rule matched them)."""

    condition: r.Node
    requirements: StepUp

    def to_dict(self) -> dict[str, Any]:
        return {
            "condition": r.to_cel(self.condition),
            "ast": r.to_json(self.condition),
            "requirements": self.requirements.to_dict(),
        }


@attrs.frozen
class ObligationBranch:
    """Obligations that come with the rows where ``condition`` holds (an allow rule's
    condition); a row carries the obligations of every branch it meets."""

    condition: r.Node
    obligations: tuple[Obligation, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "condition": r.to_cel(self.condition),
            "obligations": [o.to_dict() for o in self.obligations],
        }


Row = Mapping[str, Any]
_Decider = Callable[[Row], Decision]


@attrs.frozen
class Plan:
    """Which resources of ``resource_type`` the request may read (allow), as a
    condition over ``resource.id`` and ``resource.properties.*``.

    For every resource of the type, ``condition`` holds exactly when the decision for
    the request with that resource is allow (the behaviour features, ``now`` and the
    request's other values are those of the plan). ``kind`` is
    :attr:`PlanKind.CONDITIONAL` unless the condition is constant. ``not_expressible``
    names the part of the condition a filter cannot hold (None when it can: then
    :mod:`zerotrust.plan.sqlalchemy` and :mod:`zerotrust.plan.django` translate it);
    :meth:`allowed_rows` is exact either way.
    """

    kind: PlanKind
    resource_type: str
    action: str
    condition: r.Node
    step_up: StepUpPlan | None
    obligations: tuple[ObligationBranch, ...]
    risk: Risk
    errors: tuple[EvaluationError, ...]
    policy_revision: str
    decision_id: str
    evaluated_at: datetime.datetime
    _decide_row: _Decider = attrs.field(eq=False, repr=False, alias="decide_row")
    #: The part of the condition a filter cannot hold, found once (rows read it often).
    not_expressible: str | None = attrs.field(init=False, eq=False, repr=False)
    # Whether the step-up's and every obligation branch's condition are filters too
    # (else rows are decided for them).
    _step_up_exact: bool = attrs.field(init=False, eq=False, repr=False)
    _branches_exact: bool = attrs.field(init=False, eq=False, repr=False)

    @not_expressible.default
    def _not_expressible(self) -> str | None:
        return r.expressible(self.condition)

    @_step_up_exact.default
    def _step_up_is_exact(self) -> bool:
        return self.step_up is None or r.expressible(self.step_up.condition) is None

    @_branches_exact.default
    def _branches_are_exact(self) -> bool:
        return all(r.expressible(b.condition) is None for b in self.obligations)

    @property
    def fields(self) -> tuple[str, ...]:
        """The attribute paths the condition reads (what a filter's mapping must name)."""
        return r.fields(self.condition)

    def matches(self, resource: Row) -> bool:
        """Whether the plan allows one resource: ``{"id": ..., "properties": {...}}``.

        Exact: through the residual when it is expressible, else by deciding the
        request with this resource (as :meth:`decide`).
        """
        if self.kind is not PlanKind.CONDITIONAL:
            return self.kind is PlanKind.ALWAYS_ALLOWED
        if self.not_expressible is None:
            return r.holds(self.condition, _row(resource)) is True
        return self._decide_row(_row(resource)).allowed

    def step_up_matches(self, resource: Row) -> bool:
        """Whether a step-up would open this resource (see :class:`StepUpPlan`)."""
        if self.step_up is None:
            return False
        if self._step_up_exact:
            return r.holds(self.step_up.condition, _row(resource)) is True
        decision = self._decide_row(_row(resource))
        return decision.effect is Effect.STEP_UP and any(
            reason.effect is Effect.ALLOW for reason in decision.reasons
        )

    def decide(self, resource: Row) -> Decision:
        """The decision for the plan's request with this resource, at the plan's time
        and with its behaviour features (not logged, not counted)."""
        return self._decide_row(_row(resource))

    def allowed_rows(self, rows: Iterable[T], resource: Callable[[T], Row]) -> list[T]:
        """The rows the plan allows, deciding each (the fallback when the plan is not a
        filter): ``resource(row)`` gives ``{"id": ..., "properties": {...}}``."""
        return [row for row in rows if self.decide(resource(row)).allowed]

    def obligations_for(self, resource: Row) -> tuple[Obligation, ...]:
        """The obligations the decision for this resource carries: those of every
        branch it meets when it is allowed, else none."""
        row = _row(resource)
        if not self._branches_exact or self.not_expressible is not None:
            decision = self._decide_row(row)  # (once: its effect and its obligations)
            return decision.obligations if decision.allowed else ()
        if not self.matches(row):
            return ()
        found: list[Obligation] = []
        for branch in self.obligations:
            if r.holds(branch.condition, row) is True:
                found.extend(branch.obligations)
        return tuple(found)

    def to_dict(self) -> dict[str, Any]:
        """JSON data: ``kind``, ``condition`` (CEL-like text), ``ast`` (nested ``op``
        nodes), ``step_up``, ``obligations``, ``not_expressible``, ids."""
        return {
            "kind": self.kind.value,
            "resource_type": self.resource_type,
            "action": self.action,
            "condition": r.to_cel(self.condition),
            "ast": r.to_json(self.condition),
            "not_expressible": self.not_expressible,
            "fields": list(self.fields),
            "step_up": self.step_up.to_dict() if self.step_up is not None else None,
            "obligations": [b.to_dict() for b in self.obligations],
            "risk": self.risk.to_dict(),
            "errors": [e.to_dict() for e in self.errors],
            "policy_revision": self.policy_revision,
            "decision_id": self.decision_id,
            "evaluated_at": self.evaluated_at.isoformat(),
        }


def filter_condition(plan: Plan | r.Node, mapped: Iterable[str]) -> r.Node:
    """The condition a filter adapter translates (a plan's, or a residual node itself),
    once it is known to be one: raises :class:`NotExpressibleError` for a part outside
    the plan language and :class:`UnmappedAttributeError` for a path not ``mapped``."""
    node = plan.condition if isinstance(plan, Plan) else plan
    if not isinstance(node, r.Node):
        raise NotExpressibleError(f"not a plan or a residual node: {type(plan).__name__}")
    problem = r.expressible(node)
    if problem is not None:
        raise NotExpressibleError(problem)
    known = frozenset(mapped)
    for path in r.fields(node):
        if path not in known:
            raise UnmappedAttributeError(path, known)
    return _keys_of_maps(node)


def _keys_of_maps(node: r.Node) -> r.Node:
    """``x in m`` for a known map with string keys as ``x in [its keys]``: the same on
    every row a table can hold (a column's value is a scalar; CEL errors only for a null,
    list or map key, which a column never is: NULL is a missing property)."""
    if isinstance(node, r.In):
        container = node.container
        if (
            isinstance(container, r.Value)
            and isinstance(container.value, Mapping)
            and all(type(k) is str for k in container.value)
        ):
            return r.In(_keys_of_maps(node.item), r.Value(sorted(container.value)))
        return node
    if isinstance(node, r.And | r.Or):
        return type(node)(_keys_of_maps(node.left), _keys_of_maps(node.right))
    if isinstance(node, r.Not | r.Fires):
        return type(node)(_keys_of_maps(node.operand))
    return node


def _row(resource: Row) -> dict[str, Any]:
    if not isinstance(resource, Mapping):
        raise ZeroTrustError(
            f"a row's resource must be a mapping with id and properties, not "
            f"{type(resource).__name__}"
        )
    properties = resource.get("properties", {})
    if not isinstance(properties, Mapping):
        raise RequestError("resource.properties", "must be a mapping")
    rid = resource.get("id")
    if rid is not None and type(rid) is not str:  # (as evaluate refuses it: ids are text)
        raise RequestError("resource.id", f"must be a string, not {type(rid).__name__}")
    return {"id": rid, "properties": properties}
