"""Recent behaviour: the seam through which stores feed the ``behavior`` CEL variable.

The engine calls ``features`` before the rules run (its mapping becomes ``behavior``)
and ``record`` after the decision. Stores may also offer ``features_async`` /
``record_async`` (used by ``evaluate_async``), ``record_access`` (used by
``PolicyDecisionPoint.record_access``), and ``on_store_error`` with
``store_error_step_up`` (what the PDP does when a mapping says ``available: false``;
a source without them leaves that to the policies).
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Protocol

from zerotrust.decision import Decision
from zerotrust.request import AccessRequest

__all__ = ["BehaviorSource", "BehaviorStore"]


class BehaviorSource(Protocol):
    """Computes a subject's behaviour features before a decision and records it after.

    ``features`` may raise; the engine then evaluates with ``{"available": False}``.
    """

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]: ...

    def record(self, request: AccessRequest, decision: Decision) -> None: ...


class BehaviorStore(BehaviorSource, Protocol):
    """A source that keeps history: what the shipped stores implement."""

    def record_access(self, request: AccessRequest, at: datetime.datetime, records: int) -> None:
        """Add ``records`` (negative: a correction) to the subject's counts at ``at``."""
        ...
