"""zerotrust: an embeddable Zero Trust policy decision point."""

from __future__ import annotations

from zerotrust.audit import (
    DecisionLog,
    JsonLinesLog,
    LoggingLog,
    NullLog,
    StdoutLog,
    audit_record,
)
from zerotrust.behavior import BehaviorSource, BehaviorStore
from zerotrust.behavior.config import BehaviorConfig, StoreErrorMode
from zerotrust.behavior.memory import MemoryBehaviorStore
from zerotrust.behavior.redis import RedisBehaviorStore
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
    ValueRead,
)
from zerotrust.engine import DecisionPoint, PolicyDecisionPoint
from zerotrust.errors import (
    BehaviorConfigError,
    BehaviorStoreError,
    DecisionLogError,
    DecisionUnavailableError,
    Diagnostic,
    IdentityError,
    PolicyError,
    ReportError,
    RequestError,
    StepUpError,
    ZeroTrustError,
)
from zerotrust.policy.compile import PolicySet
from zerotrust.request import AccessRequest, Action, Resource, Subject

__version__ = "0.1.0"

__all__ = [
    "AccessRequest",
    "Action",
    "BehaviorConfig",
    "BehaviorConfigError",
    "BehaviorSource",
    "BehaviorStore",
    "BehaviorStoreError",
    "Decision",
    "DecisionLog",
    "DecisionLogError",
    "DecisionPoint",
    "DecisionUnavailableError",
    "Diagnostic",
    "Effect",
    "EvaluationError",
    "IdentityError",
    "JsonLinesLog",
    "LoggingLog",
    "MemoryBehaviorStore",
    "NullLog",
    "Obligation",
    "PolicyDecisionPoint",
    "PolicyError",
    "PolicySet",
    "Reason",
    "RedisBehaviorStore",
    "ReportError",
    "ReportOnlyResult",
    "RequestError",
    "Resource",
    "Risk",
    "StdoutLog",
    "StepUp",
    "StepUpError",
    "StoreErrorMode",
    "Subject",
    "TraceEntry",
    "ValueRead",
    "ZeroTrustError",
    "__version__",
    "audit_record",
]
