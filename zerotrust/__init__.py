"""zerotrust: an embeddable Zero Trust policy decision point."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from zerotrust.engine import PolicyDecisionPoint
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
    from zerotrust.policy.policy_set import PolicySet
    from zerotrust.protocols import DecisionPoint
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


# Imported on first use (PEP 562), so importing a submodule (the pytest plugin, the CLI)
# does not load the engine.
_WHERE = {
    "DecisionLog": "zerotrust.audit",
    "JsonLinesLog": "zerotrust.audit",
    "LoggingLog": "zerotrust.audit",
    "NullLog": "zerotrust.audit",
    "StdoutLog": "zerotrust.audit",
    "audit_record": "zerotrust.audit",
    "BehaviorSource": "zerotrust.behavior",
    "BehaviorStore": "zerotrust.behavior",
    "BehaviorConfig": "zerotrust.behavior.config",
    "StoreErrorMode": "zerotrust.behavior.config",
    "MemoryBehaviorStore": "zerotrust.behavior.memory",
    "RedisBehaviorStore": "zerotrust.behavior.redis",
    "Decision": "zerotrust.decision",
    "Effect": "zerotrust.decision",
    "EvaluationError": "zerotrust.decision",
    "Obligation": "zerotrust.decision",
    "Reason": "zerotrust.decision",
    "ReportOnlyResult": "zerotrust.decision",
    "Risk": "zerotrust.decision",
    "StepUp": "zerotrust.decision",
    "TraceEntry": "zerotrust.decision",
    "ValueRead": "zerotrust.decision",
    "DecisionPoint": "zerotrust.protocols",
    "PolicyDecisionPoint": "zerotrust.engine",
    "BehaviorConfigError": "zerotrust.errors",
    "BehaviorStoreError": "zerotrust.errors",
    "DecisionLogError": "zerotrust.errors",
    "DecisionUnavailableError": "zerotrust.errors",
    "Diagnostic": "zerotrust.errors",
    "IdentityError": "zerotrust.errors",
    "PolicyError": "zerotrust.errors",
    "ReportError": "zerotrust.errors",
    "RequestError": "zerotrust.errors",
    "StepUpError": "zerotrust.errors",
    "ZeroTrustError": "zerotrust.errors",
    "PolicySet": "zerotrust.policy.policy_set",
    "AccessRequest": "zerotrust.request",
    "Action": "zerotrust.request",
    "Resource": "zerotrust.request",
    "Subject": "zerotrust.request",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'zerotrust' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
