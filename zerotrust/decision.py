"""What comes out of the decision point: the effect and everything that explains it."""

from __future__ import annotations

import datetime
import enum
from collections.abc import Mapping
from typing import Any

import attrs

__all__ = [
    "Decision",
    "Effect",
    "EvaluationError",
    "Obligation",
    "Reason",
    "ReportOnlyResult",
    "Risk",
    "StepUp",
    "TraceEntry",
]


class Effect(enum.StrEnum):
    """The three answers. Order of strength for combining: deny > step_up > allow."""

    ALLOW = "allow"
    DENY = "deny"
    STEP_UP = "step_up"


@attrs.frozen
class Reason:
    """A rule that matched and was enforced."""

    rule: str
    effect: Effect
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "effect": self.effect.value, "reason": self.reason}


@attrs.frozen
class Risk:
    """The request's risk score (0..100) and the names of the signals that made it."""

    score: int = 0
    signals: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"score": self.score, "signals": list(self.signals)}


@attrs.frozen
class StepUp:
    """What the caller must prove again: OpenID ``acr_values`` and a maximum auth age."""

    acr_values: tuple[str, ...] = ()
    max_age: int | None = None

    def merge(self, other: StepUp) -> StepUp:
        """Union of acr values in first-seen order; the stricter (smaller) max_age."""
        acr = self.acr_values + tuple(v for v in other.acr_values if v not in self.acr_values)
        ages = [a for a in (self.max_age, other.max_age) if a is not None]
        return StepUp(acr_values=acr, max_age=min(ages) if ages else None)

    def to_dict(self) -> dict[str, Any]:
        return {"acr_values": list(self.acr_values), "max_age": self.max_age}


def _freeze_params(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return dict(value)


@attrs.frozen
class Obligation:
    """An instruction the enforcement point must carry out, e.g. ``mask`` some fields.

    ``params`` holds every key of the obligation other than ``type`` (read-only by contract).
    """

    type: str
    params: Mapping[str, Any] = attrs.field(factory=dict, converter=_freeze_params, hash=False)
    rule: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, **_json_copy(self.params)}


@attrs.frozen
class ReportOnlyResult:
    """A report-only rule's outcome: shown, never enforced."""

    rule: str
    effect: Effect
    matched: bool
    error: str | None = None
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "effect": self.effect.value,
            "matched": self.matched,
            "error": self.error,
            "reason": self.reason,
        }


@attrs.frozen
class EvaluationError:
    """A condition that failed at evaluation time, and how it was counted."""

    rule: str
    kind: str  # "rule", "signal" or "report-only"
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "kind": self.kind, "message": self.message}


@attrs.frozen
class TraceEntry:
    """One applicable rule or signal and what became of it (for ``explain``)."""

    rule: str
    kind: str  # "rule", "signal" or "report-only"
    effect: str | None  # the rule's effect, or None for signals
    outcome: str  # "matched", "not_matched" or "error"
    message: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "rule": self.rule,
            "kind": self.kind,
            "effect": self.effect,
            "outcome": self.outcome,
            "message": self.message,
        }


@attrs.frozen
class Decision:
    """The answer to one request.

    ``effect`` is final; ``reasons`` are the enforced rules that matched (all effects,
    so a deny can show which allows it overrode); ``obligations`` belong to the final effect.
    """

    effect: Effect
    reasons: tuple[Reason, ...]
    risk: Risk
    step_up: StepUp | None
    obligations: tuple[Obligation, ...]
    report_only: tuple[ReportOnlyResult, ...]
    errors: tuple[EvaluationError, ...]
    policy_revision: str
    decision_id: str
    evaluated_at: datetime.datetime
    trace: tuple[TraceEntry, ...] | None = None

    @property
    def allowed(self) -> bool:
        return self.effect is Effect.ALLOW

    @property
    def explain(self) -> tuple[TraceEntry, ...]:
        """Every applicable rule and signal with its outcome (empty unless ``explain=True``)."""
        return self.trace or ()

    def to_dict(self) -> dict[str, Any]:
        """Stable, JSON-serialisable form: key order and shapes never depend on input order."""
        out: dict[str, Any] = {
            "decision_id": self.decision_id,
            "effect": self.effect.value,
            "allowed": self.allowed,
            "reasons": [r.to_dict() for r in self.reasons],
            "risk": self.risk.to_dict(),
            "step_up": self.step_up.to_dict() if self.step_up is not None else None,
            "obligations": [o.to_dict() for o in self.obligations],
            "report_only": [r.to_dict() for r in self.report_only],
            "errors": [e.to_dict() for e in self.errors],
            "policy_revision": self.policy_revision,
            "evaluated_at": self.evaluated_at.isoformat(),
        }
        if self.trace is not None:
            out["explain"] = [t.to_dict() for t in self.trace]
        return out


def _json_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_copy(v) for v in value]
    return value
