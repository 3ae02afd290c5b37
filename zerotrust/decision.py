"""What comes out of the decision point: the effect and everything that explains it."""

from __future__ import annotations

import datetime
import enum
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from zerotrust._describe import describe
from zerotrust.errors import StepUpError

__all__ = [
    "ACR_VALUE",
    "MAX_AGE_LIMIT",
    "Decision",
    "Effect",
    "EvaluationError",
    "Obligation",
    "Reason",
    "ReportOnlyResult",
    "Risk",
    "StepUp",
    "TraceEntry",
    "ValueRead",
    "acr_values_problem",
    "max_age_problem",
    "plain_behavior",
    "plan_of",
]

#: One acr value. They travel space-separated (OpenID Connect Core 3.1.2.1, RFC 9470
#: section 3) inside a quoted WWW-Authenticate parameter (RFC 6750 section 3): each is a
#: run of RFC 6749 NQCHAR (printable ASCII except space, double quote and backslash).
ACR_VALUE = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,255}\Z")
#: OpenID Connect ``max_age`` is seconds; receivers commonly read it as a signed 32-bit int.
MAX_AGE_LIMIT = 2**31 - 1
_SHOWN = 60


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


def _shown(value: Any) -> str:
    """A value for an error message: a string's text (bounded), else its kind."""
    if type(value) is not str:
        return describe(value, mapping="a mapping", sequence="a list")
    text = repr(value)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def acr_values_problem(values: Any) -> str | None:
    """Why ``values`` cannot be sent as ``acr_values``, or None when it can: it must be
    a list or tuple (a bare string is refused, not split) of :data:`ACR_VALUE` tokens.
    The text completes a sentence that starts with the field's name."""
    if type(values) is not list and type(values) is not tuple:
        return f"must be a list of acr values, not {_shown(values)}"
    for value in values:
        if type(value) is not str or not ACR_VALUE.match(value):
            return (
                f"entry {_shown(value)} must be one token of printable ASCII without spaces, "
                "quotes or backslashes (RFC 6749 NQCHAR, 1 to 255 characters): the values "
                "are sent space-separated"
            )
    return None


def max_age_problem(value: Any) -> str | None:
    """Why ``value`` cannot be sent as ``max_age``, or None when it can (None or an
    exact ``int`` from 0 to :data:`MAX_AGE_LIMIT` seconds; never a bool or float)."""
    if value is None or (type(value) is int and 0 <= value <= MAX_AGE_LIMIT):
        return None
    shown = repr(value) if type(value) in (int, float, bool) else _shown(value)
    return f"must be a whole number of seconds from 0 to {MAX_AGE_LIMIT} or None, not {shown}"


def _acr_tuple(values: Any) -> Any:
    """A list becomes a tuple; anything else is left for the validator to refuse."""
    return tuple(values) if type(values) is list else values


def _check_acr(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    problem = acr_values_problem(value)
    if problem is not None:
        raise StepUpError(f"StepUp.{attribute.name} {problem}")


def _check_max_age(_: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
    problem = max_age_problem(value)
    if problem is not None:
        raise StepUpError(f"StepUp.{attribute.name} {problem}")


@attrs.frozen
class StepUp:
    """What the caller must prove again: OpenID ``acr_values`` and a maximum auth age.

    Both end up in a ``WWW-Authenticate`` challenge (RFC 9470) and in AuthZEN replies,
    so they are checked here, whoever builds one: ``acr_values`` a list or tuple of
    :data:`ACR_VALUE` tokens, ``max_age`` None or whole seconds from 0 to
    :data:`MAX_AGE_LIMIT`. Raises :class:`~zerotrust.errors.StepUpError` otherwise.
    """

    acr_values: tuple[str, ...] = attrs.field(
        default=(), converter=_acr_tuple, validator=_check_acr
    )
    max_age: int | None = attrs.field(default=None, validator=_check_max_age)

    def merge(self, other: StepUp) -> StepUp:
        """Union of acr values in first-seen order; the stricter (smaller) max_age."""
        if not other.acr_values and other.max_age is None:
            return self  # nothing to add (and no need to check the values again)
        if not self.acr_values and self.max_age is None:
            return other
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
class ValueRead:
    """An attribute path a condition reads and its value in the request (for ``explain``).

    ``value`` is JSON data, cut short where long (see ``docs/policy-language.md``), and
    None when ``missing``: the request has no such attribute, the usual sign of a typo.
    """

    path: str
    value: Any = attrs.field(default=None, hash=False)
    missing: bool = False
    #: For a variable or derived role (``TraceEntry.variables``): why it has no value.
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        if self.missing:
            return {"path": self.path, "missing": True}
        if self.error is not None:
            return {"path": self.path, "error": self.error}
        return {"path": self.path, "value": self.value}

    def __str__(self) -> str:
        if self.missing:
            return f"{self.path}: missing"
        if self.error is not None:
            return f"{self.path}: error: {self.error}"
        return f"{self.path} = {json.dumps(self.value, ensure_ascii=False)}"


@attrs.frozen
class TraceEntry:
    """One applicable rule or signal and what became of it (for ``explain``).

    ``reads`` are the attribute paths its condition reads with their values, so an
    author sees why it matched or not.
    """

    rule: str
    kind: str  # "rule", "signal" or "report-only"
    effect: str | None  # the rule's effect, or None for signals
    outcome: str  # "matched", "not_matched" or "error"
    message: str | None = None
    reads: tuple[ValueRead, ...] = ()
    #: The value of each policy variable and derived role the condition reads (directly
    #: or through another), evaluated for explain only; listed when there are any.
    variables: tuple[ValueRead, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {
            "rule": self.rule,
            "kind": self.kind,
            "effect": self.effect,
            "outcome": self.outcome,
            "message": self.message,
            "reads": [r.to_dict() for r in self.reads],
        }
        if self.variables:
            out["variables"] = [v.to_dict() for v in self.variables]
        return out


@attrs.frozen
class Decision:
    """The answer to one request.

    ``effect`` is final; ``reasons`` are the enforced rules that matched (all effects,
    so a deny can show which allows it overrode); ``obligations`` belong to the final effect.
    ``behavior`` is the feature map the rules saw (the behaviour source's mapping, read-only
    by contract), or None when the PDP has no behaviour source. It goes to the decision
    log, not into :meth:`to_dict`: the enforcement point and the client need the answer,
    not the subject's history and its peer group's figures.
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
    behavior: Mapping[str, Any] | None = attrs.field(default=None, hash=False, repr=False)
    #: With ``explain=True``, why no policy applied when none did (a misspelt resource
    #: type or action is the usual cause); None otherwise.
    no_policy: str | None = None
    # Set by the PDP when ``behavior`` is plain JSON data by construction (the memory
    # store's own map): the decision log then writes it without checking a copy.
    _plain_behavior: bool = attrs.field(default=False, init=False, eq=False, repr=False)
    # Set by the PDP on the record of a query plan (``PolicyDecisionPoint.plan``): gives
    # the plan as JSON data (only when a log writes it), with ``"kind": "plan"``.
    _plan: Callable[[], Mapping[str, Any]] | None = attrs.field(
        default=None, init=False, eq=False, repr=False
    )

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
            out["no_policy"] = self.no_policy
        return out


def _json_copy(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _json_copy(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_copy(v) for v in value]
    return value


def plain_behavior(decision: Decision) -> Mapping[str, Any] | None:
    """The decision's feature map if the PDP made it from plain JSON data by
    construction (nothing to check before it is written), else None."""
    return decision.behavior if decision._plain_behavior else None


def plan_of(decision: Decision) -> Mapping[str, Any] | None:
    """The plan a decision-log record stands for (JSON data), or None for a decision."""
    return None if decision._plan is None else decision._plan()
