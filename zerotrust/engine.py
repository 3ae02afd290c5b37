"""PolicyDecisionPoint: one request in, one decision out, logged.

Evaluation is a pure function of the compiled set, the request, the behaviour
features and the clock; everything else (loading, logging, behaviour stores)
happens around it.
"""

from __future__ import annotations

import datetime
import logging
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from zerotrust.audit.record import DecisionLog
from zerotrust.audit.sinks import NullLog
from zerotrust.behavior import BehaviorSource
from zerotrust.cel import Backend, ConditionError, default_backend
from zerotrust.decision import (
    Decision,
    Effect,
    EvaluationError,
    Obligation,
    Reason,
    ReportOnlyResult,
    Risk,
    StepUp,
    TraceEntry,
)
from zerotrust.errors import ZeroTrustError
from zerotrust.policy.compile import CompiledRule, PolicySet
from zerotrust.policy.loader import load_path, load_texts
from zerotrust.request import AccessRequest

__all__ = ["DEFAULT_DENY", "PolicyDecisionPoint", "decide"]

DEFAULT_DENY = "default-deny"
_log = logging.getLogger("zerotrust")
Clock = Callable[[], datetime.datetime]


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class PolicyDecisionPoint:
    """Decides requests against a policy set; thread-safe, reloadable.

    Build one with :meth:`from_path`. ``clock`` returns an aware datetime (the CEL
    ``now``; callers can never supply it). ``decision_log`` receives every decision.
    """

    def __init__(
        self,
        policies: PolicySet,
        *,
        clock: Clock | None = None,
        decision_log: DecisionLog | None = None,
        behavior: BehaviorSource | None = None,
        backend: Backend | None = None,
        loader: Callable[[Backend], PolicySet] | None = None,
    ) -> None:
        self._set = policies
        self._clock = clock or _utc_now
        self._log = decision_log if decision_log is not None else NullLog()
        self._behavior = behavior
        self._backend = backend or default_backend()
        self._loader = loader
        self._reload_lock = threading.Lock()
        self._failures_lock = threading.Lock()
        self._log_failures = 0
        self._behavior_failures = 0

    @classmethod
    def from_path(
        cls,
        path: str | Path,
        *,
        clock: Clock | None = None,
        decision_log: DecisionLog | None = None,
        behavior: BehaviorSource | None = None,
        backend: Backend | None = None,
    ) -> PolicyDecisionPoint:
        """Load a policy file or directory; raise :class:`PolicyError` listing every problem."""
        return cls._loaded(
            lambda b: load_path(path, b),
            clock=clock,
            decision_log=decision_log,
            behavior=behavior,
            backend=backend,
        )

    @classmethod
    def from_texts(
        cls,
        texts: Mapping[str, str],
        *,
        clock: Clock | None = None,
        decision_log: DecisionLog | None = None,
        behavior: BehaviorSource | None = None,
        backend: Backend | None = None,
    ) -> PolicyDecisionPoint:
        """Load policies from ``{file name: YAML text}`` (names ending ``.data.yaml`` are data)."""
        frozen = dict(texts)
        return cls._loaded(
            lambda b: load_texts(frozen, b),
            clock=clock,
            decision_log=decision_log,
            behavior=behavior,
            backend=backend,
        )

    @classmethod
    def _loaded(
        cls,
        loader: Callable[[Backend], PolicySet],
        *,
        clock: Clock | None,
        decision_log: DecisionLog | None,
        behavior: BehaviorSource | None,
        backend: Backend | None,
    ) -> PolicyDecisionPoint:
        backend = backend or default_backend()
        return cls(
            loader(backend),
            clock=clock,
            decision_log=decision_log,
            behavior=behavior,
            backend=backend,
            loader=loader,
        )

    @property
    def policies(self) -> PolicySet:
        return self._set

    @property
    def revision(self) -> str:
        return self._set.revision

    @property
    def decision_log_failures(self) -> int:
        """How many decisions the decision log failed to record."""
        return self._log_failures

    @property
    def behavior_failures(self) -> int:
        """How many calls to the behaviour source failed (features then read as unavailable)."""
        return self._behavior_failures

    def reload(self) -> str:
        """Reload from the original source and swap atomically; return the new revision.

        On any error the current set stays in force and :class:`PolicyError` is raised.
        """
        if self._loader is None:
            raise ZeroTrustError(
                "this PolicyDecisionPoint was built from a PolicySet; nothing to reload"
            )
        with self._reload_lock:
            fresh = self._loader(self._backend)
            self._set = fresh
        return fresh.revision

    def evaluate(
        self,
        request: Mapping[str, Any] | AccessRequest,
        *,
        explain: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Decision:
        """Decide one request.

        Raises :class:`RequestError` for malformed input (nothing is evaluated then), and
        :class:`ZeroTrustError` if the configured clock returns a naive datetime. Errors
        inside policies never raise: they are recorded in the decision and fail closed.
        """
        req = AccessRequest.from_mapping(request)
        now = self._now()
        features = self._features(req, now)
        decision = decide(self._set, req, now, features, self._backend, explain=explain)
        self._after(req, decision, extra)
        return decision

    def evaluate_many(
        self,
        requests: Iterable[Mapping[str, Any] | AccessRequest],
        *,
        explain: bool = False,
    ) -> list[Decision]:
        """Decide several requests in order; all are validated before any is decided."""
        validated = [AccessRequest.from_mapping(r) for r in requests]
        return [self.evaluate(r, explain=explain) for r in validated]

    async def evaluate_async(
        self,
        request: Mapping[str, Any] | AccessRequest,
        *,
        explain: bool = False,
        extra: Mapping[str, Any] | None = None,
    ) -> Decision:
        """As :meth:`evaluate`, for event loops: uses the behaviour source's async
        methods when it has them (``features_async`` / ``record_async``)."""
        req = AccessRequest.from_mapping(request)
        now = self._now()
        get_async = getattr(self._behavior, "features_async", None)
        if get_async is not None:
            try:
                features: Mapping[str, Any] = await get_async(req, now)
            except Exception as exc:
                features = self._behavior_failed(exc)
        else:
            features = self._features(req, now)
        decision = decide(self._set, req, now, features, self._backend, explain=explain)
        record_async = getattr(self._behavior, "record_async", None)
        if record_async is not None:
            try:
                await record_async(req, decision)
            except Exception as exc:
                self._behavior_failed(exc)
            self._emit(req, decision, extra)
        else:
            self._after(req, decision, extra)
        return decision

    def _now(self) -> datetime.datetime:
        now = self._clock()
        if not isinstance(now, datetime.datetime) or now.tzinfo is None:
            raise ZeroTrustError("the PDP clock must return a timezone-aware datetime")
        return now

    def _features(self, req: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]:
        if self._behavior is None:
            return {}
        try:
            return self._behavior.features(req, now)
        except Exception as exc:
            return self._behavior_failed(exc)

    def _behavior_failed(self, exc: BaseException) -> Mapping[str, Any]:
        with self._failures_lock:
            self._behavior_failures += 1
        _log.error("behaviour source failed: %s: %s", type(exc).__name__, exc)
        return {"available": False}

    def _after(
        self, req: AccessRequest, decision: Decision, extra: Mapping[str, Any] | None
    ) -> None:
        if self._behavior is not None:
            try:
                self._behavior.record(req, decision)
            except Exception as exc:
                self._behavior_failed(exc)
        self._emit(req, decision, extra)

    def _emit(
        self, req: AccessRequest, decision: Decision, extra: Mapping[str, Any] | None
    ) -> None:
        try:
            self._log.emit(decision, req, extra or {})
        except Exception as exc:
            # A broken audit sink must not crash or change the decision; it must be loud.
            with self._failures_lock:
                self._log_failures += 1
            _log.error(
                "decision log failed for decision %s: %s: %s",
                decision.decision_id,
                type(exc).__name__,
                exc,
            )


def decide(
    policies: PolicySet,
    req: AccessRequest,
    now: datetime.datetime,
    features: Mapping[str, Any],
    backend: Backend,
    *,
    explain: bool = False,
) -> Decision:
    """The pure decision: applicable policies, risk, combining, obligations."""
    applicable = policies.applicable(req.resource.type, req.action.name)
    trace: list[TraceEntry] | None = [] if explain else None
    errors: list[EvaluationError] = []
    bindings = backend.bind(
        {
            "subject": req.subject.to_dict(),
            "action": req.action.to_dict(),
            "resource": req.resource.to_dict(),
            "device": req.device,
            "context": req.context,
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
                trace.append(_entry(signal.ref, "signal", None, matched, error))
    risk = Risk(score=min(100, score), signals=tuple(signals))
    bindings = backend.extend(bindings, {"risk": risk.to_dict()})

    matched_rules: dict[Effect, list[CompiledRule]] = {e: [] for e in Effect}
    report_rules: list[tuple[CompiledRule, bool, str | None]] = []
    for policy in applicable:
        for rule in policy.rules:
            condition, error = rule.condition, None
            if condition is None:
                matched = True
            else:
                try:
                    matched = condition(bindings)
                except ConditionError as exc:
                    # Fail closed: an unknown never allows, and always denies or steps up.
                    matched, error = rule.effect is not Effect.ALLOW, str(exc)
                    kind = "report-only" if rule.report_only else "rule"
                    errors.append(EvaluationError(rule.ref, kind, error))
            if rule.report_only:
                report_rules.append((rule, matched, error))
            elif matched:
                matched_rules[rule.effect].append(rule)
            if trace is not None:
                kind = "report-only" if rule.report_only else "rule"
                trace.append(_entry(rule.ref, kind, rule.effect.value, matched, error))

    if matched_rules[Effect.DENY]:
        effect = Effect.DENY
    elif matched_rules[Effect.STEP_UP]:
        effect = Effect.STEP_UP
    elif matched_rules[Effect.ALLOW]:
        effect = Effect.ALLOW
    else:
        effect = Effect.DENY

    reasons = [
        Reason(rule.ref, rule.effect, rule.reason)
        for e in (Effect.DENY, Effect.STEP_UP, Effect.ALLOW)
        for rule in matched_rules[e]
    ]
    if not reasons:
        reasons.append(Reason(DEFAULT_DENY, Effect.DENY, "no rule allowed the request"))
    step_up: StepUp | None = None
    if effect is Effect.STEP_UP:
        step_up = StepUp()
        for rule in matched_rules[Effect.STEP_UP]:
            step_up = step_up.merge(rule.step_up or StepUp())
    obligations: list[Obligation] = [o for r in matched_rules[effect] for o in r.obligations]

    return Decision(
        effect=effect,
        reasons=tuple(reasons),
        risk=risk,
        step_up=step_up,
        obligations=tuple(obligations),
        report_only=tuple(
            ReportOnlyResult(rule.ref, rule.effect, matched, error, rule.reason)
            for rule, matched, error in report_rules
        ),
        errors=tuple(errors),
        policy_revision=policies.revision,
        decision_id=str(uuid.uuid4()),
        evaluated_at=now,
        trace=tuple(trace) if trace is not None else None,
    )


def _entry(ref: str, kind: str, effect: str | None, matched: bool, error: str | None) -> TraceEntry:
    outcome = "error" if error is not None else ("matched" if matched else "not_matched")
    return TraceEntry(ref, kind, effect, outcome, error)
