"""What a store takes from a request, and the feature map it gives back.

Both stores compute the same features from the same parts of a request, so a policy
behaves the same on the embedded store and on Redis.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import attrs

from zerotrust.decision import Decision, Effect
from zerotrust.errors import BehaviorStoreError
from zerotrust.request import AccessRequest, validated_variables

__all__ = [
    "FEATURES",
    "MAX_RECORDS",
    "OPTIONAL_FEATURES",
    "UNAVAILABLE",
    "Outcome",
    "counted_records",
    "outcome_of",
    "subject_of",
    "tracked_text",
]

#: Every feature a store returns, in a stable order.
FEATURES = (
    "requests_1m",
    "requests_1h",
    "requests_24h",
    "records_1h",
    "records_24h",
    "distinct_resources_1h",
    "denied_1h",
    "step_ups_1h",
    "new_device",
    "new_ip",
    "new_country",
    "baseline_records_per_hour",
    "records_7d",
    "records_30d",
    "distinct_resources_24h",
    "distinct_resources_7d",
    "distinct_resources_30d",
    "active_days_30d",
    "baseline_records_per_day",
    "baseline_distinct_per_day",
    "peers",
    "records_24h_vs_peers",
    "distinct_resources_24h_vs_peers",
    "available",
)

#: Features absent when undefined (no peer group with statistics).
OPTIONAL_FEATURES = frozenset({"peers", "records_24h_vs_peers", "distinct_resources_24h_vs_peers"})

#: A single request counts at most this many records (keeps counters in 64 bits).
MAX_RECORDS = 1_000_000_000

#: What policies see when the store cannot answer.
UNAVAILABLE: Mapping[str, Any] = {"available": False}


@attrs.frozen
class Outcome:
    """A decision's effect on the counters, applied after it is made.

    A request that was not allowed touched nothing, so its records are taken back.
    """

    at: float
    records: int
    denied: int
    step_ups: int


def counted_records(context: Mapping[str, Any]) -> int:
    """``context.records`` as a count: 1 when absent; anything but a whole number
    >= 0 also counts as 1 (the policies see the raw value and can refuse it)."""
    value = context.get("records", 1)
    if isinstance(value, bool):
        return 1
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or value < 0:
        return 1
    return min(value, MAX_RECORDS)


def subject_of(request: AccessRequest) -> tuple[str, str]:
    """The subject a store keeps history for: ``(type, id)``, both exact strings.

    Raises :class:`BehaviorStoreError` otherwise (only a request built without
    :meth:`AccessRequest.from_mapping` can hold anything else), so no two subjects
    share a history through a value's text form."""
    variables = validated_variables(request)
    if variables is not None:  # validated: exact strings (and no read-only copy to build)
        subject = variables["subject"]
        return subject["type"], subject["id"]
    kind, ident = request.subject.type, request.subject.id
    if type(kind) is not str or type(ident) is not str:
        raise BehaviorStoreError("subject.type and subject.id must be strings to be tracked")
    return kind, ident


def tracked_text(value: Any, field: str) -> str | None:
    """A tracked value (device id, IP, country, resource) as text: a str as it is,
    anything else as compact JSON, None as None. Both stores identify a value by this
    text (so the device ``1`` is the device ``"1"``, and ``1.0`` another one).

    Raises :class:`BehaviorStoreError` naming ``field`` for a value JSON cannot hold
    (only a request built without :meth:`AccessRequest.from_mapping` has one)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise BehaviorStoreError(f"{field} cannot be tracked: not JSON data") from exc


def outcome_of(request: AccessRequest, decision: Decision) -> Outcome | None:
    """The correction a decision needs, or None for an allow (already counted)."""
    if decision.effect is Effect.ALLOW:
        return None
    variables = validated_variables(request)  # (a request's own plain data, when it has it)
    context = request.context if variables is None else variables["context"]
    return Outcome(
        at=decision.evaluated_at.timestamp(),
        records=-counted_records(context),
        denied=1 if decision.effect is Effect.DENY else 0,
        step_ups=1 if decision.effect is Effect.STEP_UP else 0,
    )
