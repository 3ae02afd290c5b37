"""Planning: the combining rule of :func:`zerotrust.evaluation.decide`, over residuals.

A row is allowed when some enforced allow rule holds on it and no enforced deny or
step-up rule holds or errors on it (fail closed), which is, with ``fires(x)`` true
unless ``x`` is false::

    (allow_1 || allow_2 || ...) && !(fires(deny_1) || ... || fires(step_up_1) || ...)

Risk signals that read the resource make ``risk`` depend on the row: each rule that
reads ``risk`` is instantiated once per combination of those signals (up to
:data:`MAX_ROW_SIGNALS` of them), guarded by which of them fire.
"""

from __future__ import annotations

import datetime
import itertools
import threading
from collections.abc import Callable, Mapping
from typing import Any

from zerotrust.behavior.config import StoreErrorMode
from zerotrust.cel import Backend, Condition
from zerotrust.decision import Decision, Effect, EvaluationError, Risk, StepUp
from zerotrust.errors import RequestError
from zerotrust.evaluation import _decision_id, decide
from zerotrust.plan import residual as r
from zerotrust.plan._partial import Template, template
from zerotrust.plan._plan import ObligationBranch, Plan, PlanKind, StepUpPlan
from zerotrust.policy.policy_set import CompiledPolicy, CompiledRule, PolicySet
from zerotrust.request import AccessRequest, request_variables

__all__ = ["MAX_ROW_SIGNALS", "Planner", "plan_request"]

#: Risk signals that read the resource, beyond which a rule reading ``risk`` is not
#: expressible (each combination of them is one branch of its condition).
MAX_ROW_SIGNALS = 6
_TRUE = r.Value(True)
_FALSE = r.Value(False)


def plan_request(request: Mapping[str, Any] | AccessRequest) -> AccessRequest:
    """A plan's request, validated: its resource has a type and nothing else."""
    req = AccessRequest.from_mapping(request)
    if req.resource.id is not None or req.resource.properties:
        raise RequestError(
            "resource",
            "a plan is about every resource of a type: give resource.type only "
            "(no id, no properties)",
        )
    return req


#: A signal that may fire: name, score, and ``fires(condition)`` when the row decides.
_Signal = tuple[str, int, "r.Node | None"]


class Planner:
    """The templates of one policy set's conditions, built on first use (thread-safe)."""

    def __init__(self, policies: PolicySet) -> None:
        self.policies = policies
        self._templates: dict[int, tuple[Condition, Template]] = {}
        self._lock = threading.Lock()

    def template(self, condition: Condition | None) -> Template:
        if condition is None:
            return lambda b: _TRUE
        found = self._templates.get(id(condition))
        if found is None:
            made = template(condition.source, self.policies.functions)
            with self._lock:
                found = self._templates.setdefault(id(condition), (condition, made))
        return found[1]

    def plan(
        self,
        req: AccessRequest,
        now: datetime.datetime,
        features: Mapping[str, Any] | None,
        backend: Backend,
        *,
        on_store_error: StoreErrorMode = StoreErrorMode.EVALUATE,
        store_error_step_up: StepUp | None = None,
        schema_errors: list[EvaluationError] | None = None,
    ) -> Plan:
        """The plan of ``req``; ``schema_errors`` (from :meth:`schema_errors`) lead its
        ``errors``."""
        variables = request_variables(req)
        errors = list(schema_errors or ())
        resource_type, action = variables["resource"]["type"], variables["action"]["name"]
        applicable = self.policies.applicable(resource_type, action)
        behavior = features if features is not None else {}
        bindings: dict[str, Any] = {
            **variables,
            "data": self.policies.data,
            "behavior": behavior,
            "now": now,
        }
        fired_signals = self._signals(applicable, bindings, errors)
        risk = Risk(
            score=min(100, sum(points for _, points, node in fired_signals if node is None)),
            signals=tuple(name for name, _, node in fired_signals if node is None),
        )
        branches = _risk_branches(fired_signals)
        known_risk = risk.to_dict()

        allows: list[r.Node] = []
        blocks: list[r.Node] = []  # denies and step-ups, as fires(...)
        step_ups: list[tuple[r.Node, CompiledRule]] = []
        obligations: list[ObligationBranch] = []
        for policy in applicable:
            for rule in policy.rules:
                if rule.report_only:
                    continue
                made = self._rule(rule, bindings, known_risk, branches, errors)
                if rule.effect is Effect.ALLOW:
                    made = _holds(made)
                    allows.append(made)
                    if rule.obligations and not _is_false(made):
                        obligations.append(ObligationBranch(made, rule.obligations))
                else:
                    fired = _fires(made)
                    blocks.append(fired)
                    if rule.effect is Effect.STEP_UP and not _is_false(fired):
                        step_ups.append((fired, rule))

        allowed_somewhere = r.any_of(allows)
        blocked = r.any_of(blocks)
        condition = r.and_(allowed_somewhere, r.not_(blocked))
        step_up = _step_up_plan(allowed_somewhere, blocks, step_ups)
        if behavior.get("available") is False and on_store_error is not StoreErrorMode.EVALUATE:
            if on_store_error is StoreErrorMode.STEP_UP:
                opened = condition if step_up is None else r.or_(condition, step_up.condition)
                required = (step_up.requirements if step_up else StepUp()).merge(
                    store_error_step_up or StepUp()
                )
                step_up = None if _is_false(opened) else StepUpPlan(opened, required)
            else:
                step_up = None
            condition, obligations = _FALSE, []
        kind = PlanKind.CONDITIONAL
        if isinstance(condition, r.Value) and condition.value is True:
            kind = PlanKind.ALWAYS_ALLOWED
        elif r.never_true(condition):
            kind, condition, obligations = PlanKind.ALWAYS_DENIED, _FALSE, []
        return Plan(
            kind=kind,
            resource_type=resource_type,
            action=action,
            condition=condition,
            step_up=step_up,
            obligations=tuple(obligations),
            risk=risk,
            errors=tuple(errors),
            policy_revision=self.policies.revision,
            decision_id=_decision_id(),
            evaluated_at=now,
            decide_row=_row_decider(
                self.policies, req, now, features, backend, on_store_error, store_error_step_up
            ),
        )

    def schema_errors(self, variables: Mapping[str, Any], mode: str) -> list[EvaluationError]:
        """A plan request against the set's schemas, as ``schema_validation`` says: the
        parts other than the resource (a plan's has none) refused (``enforce``:
        :class:`RequestError`) or returned to report (``report``)."""
        checker = self.policies.checker
        if checker is None or mode == "off":
            return []
        found = [m for m in checker.check(variables) if not m.field.startswith("resource.")]
        if found and mode == "enforce":
            more = f" (and {len(found) - 1} more mismatches)" if len(found) > 1 else ""
            raise RequestError(found[0].field, f"{found[0].message}{more}")
        return [EvaluationError(m.field, "schema", m.message) for m in found]

    def _signals(
        self,
        applicable: tuple[CompiledPolicy, ...],
        bindings: Mapping[str, Any],
        errors: list[EvaluationError],
    ) -> list[_Signal]:
        """The signals that may fire, in policy order (the order ``risk.signals`` lists
        them): name, score, and ``fires(condition)`` when that depends on the row (None
        when it fires whatever the row)."""
        found: list[_Signal] = []
        for policy in applicable:
            for signal in policy.signals:
                made = self.template(signal.condition)(bindings)
                if isinstance(made, r.Error):
                    errors.append(EvaluationError(signal.ref, "signal", made.message))
                fired = r.fires(made)
                if not isinstance(fired, r.Value):
                    found.append((signal.name, signal.score, fired))
                elif fired.value:
                    found.append((signal.name, signal.score, None))
        return found

    def _rule(
        self,
        rule: CompiledRule,
        bindings: dict[str, Any],
        known_risk: Mapping[str, Any],
        branches: list[tuple[r.Node, Mapping[str, Any]]],
        errors: list[EvaluationError],
    ) -> r.Node:
        """The rule's residual; with row-dependent risk, one branch per combination."""
        build = self.template(rule.condition)
        reads_risk = rule.condition is not None and "risk" in rule.condition.variables
        if not reads_risk or len(branches) == 1:
            made = build({**bindings, "risk": branches[0][1] if branches else known_risk})
            if isinstance(made, r.Error):
                errors.append(EvaluationError(rule.ref, "rule", made.message))
            return made
        if not branches:
            return r.Opaque(f"risk (more than {MAX_ROW_SIGNALS} signals read the resource)")
        return _Branches(
            tuple((guard, build({**bindings, "risk": risk})) for guard, risk in branches)
        )


class _Branches(r.Node):
    """A rule reading row-dependent risk: its residual under each combination of signals
    (guards that exclude each other); resolved by :func:`_fires` or :func:`_holds`."""

    __slots__ = ("parts",)

    def __init__(self, parts: tuple[tuple[r.Node, r.Node], ...]) -> None:
        self.parts = parts


def _risk_branches(signals: list[_Signal]) -> list[tuple[r.Node, Mapping[str, Any]]]:
    """Each combination of row-dependent signals: its guard and the ``risk`` it makes,
    the names in policy order as ``decide`` lists them (empty when there are too many
    combinations)."""
    per_row = [node for _, _, node in signals if node is not None]
    if len(per_row) > MAX_ROW_SIGNALS:
        return []
    made: list[tuple[r.Node, Mapping[str, Any]]] = []
    for fired in itertools.product((True, False), repeat=len(per_row)):
        guard: r.Node = _TRUE
        for node, on in zip(per_row, fired, strict=True):
            guard = r.and_(guard, node if on else r.not_(node))
        on_row = iter(fired)
        kept = [(n, p) for n, p, node in signals if node is None or next(on_row)]
        total = sum(p for _, p in kept)
        made.append((guard, {"score": min(100, total), "signals": [n for n, _ in kept]}))
    return made


def _fires(made: r.Node) -> r.Node:
    if isinstance(made, _Branches):
        return r.any_of([r.and_(guard, r.fires(part)) for guard, part in made.parts])
    return r.fires(made)


def _holds(made: r.Node) -> r.Node:
    """An allow rule's residual: ``part`` under the one guard that holds (the guards
    never error, so an erroring part errors exactly on its own rows)."""
    if isinstance(made, _Branches):
        return r.any_of([r.and_(guard, part) for guard, part in made.parts])
    return made


def _is_false(node: r.Node) -> bool:
    return isinstance(node, r.Value) and node.value is False


def _step_up_plan(
    allowed: r.Node, blocks: list[r.Node], step_ups: list[tuple[r.Node, CompiledRule]]
) -> StepUpPlan | None:
    """Rows whose decision is ``step_up`` and that an allow rule matches."""
    if not step_ups:
        return None
    denies = [b for b in blocks if not any(b is s for s, _ in step_ups)]
    condition = r.all_of(
        [allowed, r.not_(r.any_of(denies)), r.any_of([fired for fired, _ in step_ups])]
    )
    if r.never_true(condition):
        return None
    required = StepUp()
    for _, rule in step_ups:
        required = required.merge(rule.step_up or StepUp())
    return StepUpPlan(condition, required)


def _row_decider(
    policies: PolicySet,
    req: AccessRequest,
    now: datetime.datetime,
    features: Mapping[str, Any] | None,
    backend: Backend,
    on_store_error: StoreErrorMode,
    store_error_step_up: StepUp | None,
) -> Callable[[Mapping[str, Any]], Decision]:
    """Deciding the plan's request with one row's resource: the exact fallback."""
    base = request_variables(req)

    def decide_row(resource: Mapping[str, Any]) -> Decision:
        full = {**base, "resource": {"type": base["resource"]["type"], **resource}}
        if full["resource"].get("id") is None:
            del full["resource"]["id"]
        return decide(
            policies,
            AccessRequest.from_mapping(full),
            now,
            features,
            backend,
            on_store_error=on_store_error,
            store_error_step_up=store_error_step_up,
        )

    return decide_row
