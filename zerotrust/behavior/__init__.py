"""Recent behaviour: the seam through which stores feed the ``behavior`` CEL variable."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any, Protocol

from zerotrust.decision import Decision
from zerotrust.request import AccessRequest

__all__ = ["BehaviorSource"]


class BehaviorSource(Protocol):
    """Computes a subject's behaviour features before a decision and records it after.

    ``features`` may raise; the engine then evaluates with ``{"available": False}``.
    """

    def features(self, request: AccessRequest, now: datetime.datetime) -> Mapping[str, Any]: ...

    def record(self, request: AccessRequest, decision: Decision) -> None: ...
