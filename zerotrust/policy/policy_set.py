"""The compiled, indexed policy set: what a decision reads.

Evaluation only ever touches the policies whose target matches the request, so
decision time does not grow with unrelated policies (see :meth:`PolicySet.applicable`).
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import chain
from typing import Any

import attrs

from zerotrust.cel import Condition
from zerotrust.cel.functions import SetFunction
from zerotrust.decision import Effect, Obligation, Reason, StepUp
from zerotrust.errors import Diagnostic
from zerotrust.policy.attr_check import RequestChecker
from zerotrust.policy.attr_schema import AttributeSchemas

__all__ = ["CompiledPolicy", "CompiledRule", "CompiledSignal", "PolicySet", "Values"]


#: The variables and derived roles a condition reads: each one's path and inlined text.
Values = tuple[tuple[str, str], ...]


@attrs.frozen
class CompiledSignal:
    ref: str
    name: str
    score: int
    condition: Condition | None
    #: For ``explain`` only (see :data:`Values`).
    values: Values = attrs.field(default=(), eq=False, repr=False)


@attrs.frozen
class CompiledRule:
    ref: str
    effect: Effect
    condition: Condition | None
    reason: str | None
    report_only: bool
    step_up: StepUp | None
    obligations: tuple[Obligation, ...]
    #: For ``explain`` only (see :data:`Values`).
    values: Values = attrs.field(default=(), eq=False, repr=False)
    #: The reason a decision gives when this rule matches and is enforced: built once
    #: here, shared by every such decision (a Reason is immutable).
    matched: Reason = attrs.field(init=False, eq=False, repr=False)

    @matched.default
    def _matched(self) -> Reason:
        return Reason(self.ref, self.effect, self.reason)


#: A rule as the decision's loop reads it: condition, rule, and which list a match
#: joins (0 deny, 1 step-up, 2 allow).
EnforcedRule = tuple[Condition | None, CompiledRule, int]
_EFFECT_INDEX = {Effect.DENY: 0, Effect.STEP_UP: 1, Effect.ALLOW: 2}


@attrs.frozen
class CompiledPolicy:
    ordinal: int
    name: str
    description: str | None
    signals: tuple[CompiledSignal, ...]
    rules: tuple[CompiledRule, ...]
    #: The rules in order, laid out for the decision's loop, or None when the policy
    #: has report-only rules (the general loop then keeps their outcomes).
    enforced: tuple[EnforcedRule, ...] | None = attrs.field(init=False, eq=False, repr=False)

    @enforced.default
    def _enforced(self) -> tuple[EnforcedRule, ...] | None:
        if any(rule.report_only for rule in self.rules):
            return None
        return tuple((rule.condition, rule, _EFFECT_INDEX[rule.effect]) for rule in self.rules)


_Bucket = tuple[CompiledPolicy, ...]
_APPLICABLE_MEMO = 4096  # (resource type, action) pairs a policy set remembers
_MEMO_CHARS = 256  # ... each pair at most this long


@attrs.frozen
class PolicySet:
    """An immutable compiled policy set; ``revision`` is a stable hash of its content."""

    policies: tuple[CompiledPolicy, ...]
    data: Mapping[str, Any] = attrs.field(hash=False)
    revision: str
    sources: tuple[str, ...]
    _exact: Mapping[tuple[str, str], _Bucket] = attrs.field(hash=False, repr=False)
    _by_resource: Mapping[str, _Bucket] = attrs.field(hash=False, repr=False)
    _by_action: Mapping[str, _Bucket] = attrs.field(hash=False, repr=False)
    _anywhere: _Bucket = attrs.field(repr=False)
    # (resource type, action) -> applicable policies: bounded, as the pairs are the
    # callers' strings; a dict's get and set are atomic, so threads may share it.
    _applicable: dict[tuple[str, str], _Bucket] = attrs.field(
        init=False, factory=dict, eq=False, hash=False, repr=False
    )
    #: The set's attribute schemas (``*.schema.yaml``), None when it has none.
    schemas: AttributeSchemas | None = attrs.field(default=None, hash=False, repr=False)
    #: The schemas compiled into request checks (see :mod:`zerotrust.policy.attr_check`).
    checker: RequestChecker | None = attrs.field(default=None, eq=False, hash=False, repr=False)
    #: The set's own CEL functions (``in_group``), for ``explain``'s variable values.
    functions: Mapping[str, SetFunction] | None = attrs.field(
        default=None, eq=False, hash=False, repr=False
    )
    #: What loading found worth saying but not refusing (the type checker's findings
    #: under ``validation: permissive``), sorted by position.
    warnings: tuple[Diagnostic, ...] = attrs.field(default=(), eq=False, hash=False, repr=False)

    def applicable(self, resource_type: str, action: str) -> _Bucket:
        """The policies whose target matches, in load order."""
        key = (resource_type, action)
        found = self._applicable.get(key)
        if found is None:
            found = self._find(resource_type, action)
            if len(resource_type) + len(action) <= _MEMO_CHARS:  # (keeps no long texts)
                if len(self._applicable) >= _APPLICABLE_MEMO:
                    self._applicable.clear()
                self._applicable[key] = found
        return found

    def _find(self, resource_type: str, action: str) -> _Bucket:
        buckets = [
            b
            for b in (
                self._exact.get((resource_type, action)),
                self._by_resource.get(resource_type),
                self._by_action.get(action),
                self._anywhere,
            )
            if b
        ]
        if len(buckets) == 1:
            return buckets[0]
        if not buckets:
            return ()
        return tuple(sorted(chain.from_iterable(buckets), key=lambda p: p.ordinal))

    def action_names(self, resource_type: str) -> tuple[str, ...]:
        """The action names targets name for ``resource_type``, sorted (for action search)."""
        names = {action for (resource, action) in self._exact if resource == resource_type}
        names.update(self._by_action)
        return tuple(sorted(names))

    def resource_types(self) -> tuple[str, ...]:
        """The resource types targets name, sorted (for "no policy applied" hints)."""
        return tuple(sorted({resource for resource, _ in self._exact} | set(self._by_resource)))

    @property
    def rule_count(self) -> int:
        return sum(len(p.rules) for p in self.policies)
