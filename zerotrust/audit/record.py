"""What one decision-log entry holds, and the sink protocol."""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, Protocol

from zerotrust.decision import Decision
from zerotrust.request import AccessRequest

__all__ = ["REDACTED", "DecisionLog", "audit_record"]

REDACTED = "[REDACTED]"


class DecisionLog(Protocol):
    """Receives every decision. ``emit`` may raise; the engine counts and logs failures."""

    def emit(
        self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]
    ) -> None: ...


def audit_record(
    decision: Decision,
    request: AccessRequest,
    *,
    redact: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON entry for one decision.

    The whole request is kept (nothing dropped silently); ``redact`` names dotted
    paths such as ``subject.properties.email`` or ``context.ip`` whose values are
    replaced by ``"[REDACTED]"``. ``extra`` adds caller context (e.g. HTTP route).
    """
    req = copy.deepcopy(request.to_dict())
    for path in redact:
        _redact(req, path.split("."))
    record: dict[str, Any] = {
        "decision_id": decision.decision_id,
        "time": decision.evaluated_at.isoformat(),
        "subject": {"type": request.subject.type, "id": request.subject.id},
        "action": request.action.name,
        "resource": {"type": request.resource.type, "id": request.resource.id},
        "effect": decision.effect.value,
        "matched_rules": [r.rule for r in decision.reasons],
        "risk": decision.risk.to_dict(),
        "step_up": decision.step_up.to_dict() if decision.step_up else None,
        "obligations": [o.to_dict() for o in decision.obligations],
        "errors": [e.to_dict() for e in decision.errors],
        "report_only": [r.to_dict() for r in decision.report_only],
        "policy_revision": decision.policy_revision,
        "request": req,
    }
    for top in ("subject", "resource"):
        if any(p == f"{top}.id" for p in redact):
            record[top]["id"] = REDACTED
    if extra:
        record["extra"] = dict(extra)
    return record


def _redact(node: Any, parts: list[str]) -> None:
    if not parts or not isinstance(node, dict):
        return
    head, rest = parts[0], parts[1:]
    keys = list(node) if head == "*" else [head]
    for key in keys:
        if key not in node:
            continue
        if rest:
            _redact(node[key], rest)
        else:
            node[key] = REDACTED
