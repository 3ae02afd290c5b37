"""The pure decision: one request against a compiled set, nothing else.

Applicable policies, risk from signals, the combining rule (deny > step_up > allow >
default deny), fail-closed error handling, obligations and step-up requirements.
No I/O and no state: the engine wraps it with loading, behaviour and logging.
"""

from __future__ import annotations

import datetime
import random
from collections.abc import Mapping
from typing import Any

from zerotrust._explain import Tracer, no_policy
from zerotrust.behavior.config import StoreErrorMode
from zerotrust.cel import Backend, ConditionError
from zerotrust.decision import (
    Decision,
    Effect,
    EvaluationError,
    Obligation,
    Reason,
    ReportOnlyResult,
    Risk,
    StepUp,
)
from zerotrust.policy.policy_set import CompiledRule, PolicySet
from zerotrust.request import AccessRequest, request_variables

__all__ = ["DEFAULT_DENY", "STORE_UNAVAILABLE", "decide"]

DEFAULT_DENY = "default-deny"
#: The reason ref of a decision changed by ``on_store_error`` (deny or step_up).
STORE_UNAVAILABLE = "behavior/store-unavailable"
_NO_FEATURES: Mapping[str, Any] = {}
_DENY, _STEP_UP, _ALLOW = Effect.DENY, Effect.STEP_UP, Effect.ALLOW
_DEFAULT_DENY_REASON = Reason(DEFAULT_DENY, Effect.DENY, "no rule allowed the request")


def decide(
    policies: PolicySet,
    req: AccessRequest,
    now: datetime.datetime,
    features: Mapping[str, Any] | None,
    backend: Backend,
    *,
    explain: bool = False,
    on_store_error: StoreErrorMode = StoreErrorMode.EVALUATE,
    store_error_step_up: StepUp | None = None,
    features_plain: bool = False,
) -> Decision:
    """The pure decision: applicable policies, risk, combining, obligations.

    ``features`` is the behaviour source's map (kept in the decision's ``behavior``), or
    None without a source (``behavior`` is then empty to the conditions and None in the
    decision). When ``features`` say ``available: false``, ``on_store_error`` ``deny``
    or ``step_up`` overrides a weaker outcome (reason :data:`STORE_UNAVAILABLE`).
    """
    source = features
    if features is None:
        features = _NO_FEATURES
    # Conditions only read: the request's private plain data is shared, not copied.
    variables = request_variables(req)
    applicable = policies.applicable(variables["resource"]["type"], variables["action"]["name"])
    trace = Tracer(variables, policies.data, features, now, policies.functions) if explain else None
    errors: list[EvaluationError] = []
    bindings = backend.bind(
        {
            **variables,
            "data": policies.data,
            "behavior": features,
            "now": now,
        }
    )

    score = 0
    signals: list[str] = []
    for policy in applicable:
        for signal in policy.signals:
            matched, error = True, None
            if signal.condition is not None:
                try:
                    matched = signal.condition(bindings)
                except ConditionError as exc:
                    matched, error = True, str(exc)  # fail closed: an unknown counts as risky
                    errors.append(EvaluationError(signal.ref, "signal", error))
            if matched:
                score += signal.score
                signals.append(signal.name)
            if trace is not None:
                trace.signal(signal.ref, matched, error, signal.condition, signal.values)
    risk = Risk(score=min(100, score), signals=tuple(signals))
    bindings = backend.extend(bindings, {"risk": {"score": risk.score, "signals": signals[:]}})

    # The hot loop: effects told apart by identity (an Enum's hash and value are
    # Python-level calls), and each matched rule's Reason built once at load.
    denies: list[CompiledRule] = []
    step_ups: list[CompiledRule] = []
    allows: list[CompiledRule] = []
    report_rules: list[tuple[CompiledRule, bool, str | None]] = []
    matches = (denies, step_ups, allows)
    for policy in applicable:
        enforced = policy.enforced
        if enforced is not None and trace is None:  # the usual case, in a tight loop
            for condition, rule, index in enforced:
                if condition is None:
                    matches[index].append(rule)
                    continue
                try:
                    if condition(bindings):
                        matches[index].append(rule)
                except ConditionError as exc:
                    # Fail closed: an unknown never allows, and always denies or steps up.
                    errors.append(EvaluationError(rule.ref, "rule", str(exc)))
                    if index != 2:
                        matches[index].append(rule)
            continue
        for rule in policy.rules:
            condition, error = rule.condition, None
            if condition is None:
                matched = True
            else:
                try:
                    matched = condition(bindings)
                except ConditionError as exc:
                    # Fail closed: an unknown never allows, and always denies or steps up.
                    matched, error = rule.effect is not _ALLOW, str(exc)
                    kind = "report-only" if rule.report_only else "rule"
                    errors.append(EvaluationError(rule.ref, kind, error))
            if rule.report_only:
                report_rules.append((rule, matched, error))
            elif matched:
                effect = rule.effect
                if effect is _DENY:
                    denies.append(rule)
                elif effect is _STEP_UP:
                    step_ups.append(rule)
                else:
                    allows.append(rule)
            if trace is not None:
                trace.rule(rule, matched, error, risk)

    if denies:
        effect, final = _DENY, denies
    elif step_ups:
        effect, final = _STEP_UP, step_ups
    elif allows:
        effect, final = _ALLOW, allows
    else:
        effect, final = _DENY, denies

    reasons = [rule.matched for rule in denies]
    reasons += [rule.matched for rule in step_ups]
    reasons += [rule.matched for rule in allows]
    if not reasons:
        reasons.append(_DEFAULT_DENY_REASON)
    step_up: StepUp | None = None
    if effect is _STEP_UP:
        step_up = StepUp()
        for rule in step_ups:
            step_up = step_up.merge(rule.step_up or StepUp())
    obligations: list[Obligation] = [o for r in final for o in r.obligations]
    if features.get("available") is False and on_store_error is not StoreErrorMode.EVALUATE:
        effect, reasons, step_up, obligations = _store_unavailable(
            on_store_error, effect, reasons, step_up, obligations, store_error_step_up
        )

    decision = Decision(
        effect,
        tuple(reasons),
        risk,
        step_up,
        tuple(obligations),
        tuple(
            ReportOnlyResult(rule.ref, rule.effect, matched, error, rule.reason)
            for rule, matched, error in report_rules
        )
        if report_rules
        else (),
        tuple(errors),
        policies.revision,
        _decision_id(),
        now,
        trace.entries() if trace is not None else None,
        source,
    )
    if explain and not applicable:
        why = no_policy(policies, variables["resource"]["type"], variables["action"]["name"])
        object.__setattr__(decision, "no_policy", why)  # frozen: set once, here
    if features_plain and source is not None:
        object.__setattr__(decision, "_plain_behavior", True)  # frozen: set once, here
    return decision


def _decision_id() -> str:
    """A random (version 4) UUID. Decision ids need uniqueness, not secrecy, so the
    ``random`` generator does instead of reading the OS entropy source every decision."""
    bits = random.getrandbits(128) & ~(0xF000 << 64) & ~(0xC << 60) | (0x4000 << 64) | (0x8 << 60)
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _store_unavailable(
    mode: StoreErrorMode,
    effect: Effect,
    reasons: list[Reason],
    step_up: StepUp | None,
    obligations: list[Obligation],
    required: StepUp | None,
) -> tuple[Effect, list[Reason], StepUp | None, list[Obligation]]:
    """Apply ``on_store_error``: it can only make the outcome stricter."""
    if mode is StoreErrorMode.DENY:
        reason = Reason(STORE_UNAVAILABLE, Effect.DENY, "recent behaviour is unavailable")
        return Effect.DENY, [reason, *reasons], None, obligations if effect is Effect.DENY else []
    if effect is Effect.DENY:
        return effect, reasons, step_up, obligations
    reason = Reason(
        STORE_UNAVAILABLE, Effect.STEP_UP, "recent behaviour is unavailable: authenticate again"
    )
    merged = (step_up or StepUp()).merge(required or StepUp())
    kept = obligations if effect is Effect.STEP_UP else []
    return Effect.STEP_UP, [reason, *reasons], merged, kept
