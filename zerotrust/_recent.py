"""The decisions a PDP remembers so that ``record_access`` can correct their counts."""

from __future__ import annotations

import datetime
import threading
from collections import OrderedDict

from zerotrust.behavior.features import counted_records
from zerotrust.decision import Decision, Effect
from zerotrust.errors import RequestError
from zerotrust.request import AccessRequest, validated_variables

__all__ = ["REMEMBERED_DECISIONS", "RecentDecisions"]

#: Decisions remembered for :meth:`PolicyDecisionPoint.record_access`.
REMEMBERED_DECISIONS = 10_000


class RecentDecisions:
    """Recorded decisions by id: the request, its time and the records it counted
    (bounded, oldest dropped; thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._recent: OrderedDict[str, tuple[AccessRequest, datetime.datetime, int]] = OrderedDict()

    def remember(self, req: AccessRequest, decision: Decision) -> None:
        counted = 0
        if decision.effect is Effect.ALLOW:
            variables = validated_variables(req)
            counted = counted_records(req.context if variables is None else variables["context"])
        recent = self._recent
        with self._lock:
            recent[decision.decision_id] = (req, decision.evaluated_at, counted)
            while len(recent) > REMEMBERED_DECISIONS:
                recent.popitem(last=False)

    def recount(self, key: str, records: int) -> tuple[AccessRequest, datetime.datetime, int]:
        """Make ``records`` the count of decision ``key``: its request, time and the
        change in count. Raises :class:`RequestError` for a decision not remembered."""
        with self._lock:
            remembered = self._recent.get(key)
            if remembered is not None:
                self._recent[key] = (remembered[0], remembered[1], records)
        if remembered is None:
            raise RequestError(
                "decision_id",
                f"unknown decision (this PDP remembers its last {REMEMBERED_DECISIONS} "
                "decisions made with behaviour available)",
            )
        req, at, counted = remembered
        return req, at, records - counted
