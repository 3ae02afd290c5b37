"""The decision log: every decision, with its request, to a sink.

Sinks implement :class:`DecisionLog` (one ``emit`` method). The engine calls it for
every decision and never lets a sink failure change or crash a decision.
"""

from __future__ import annotations

from zerotrust.audit.record import DecisionLog, audit_record
from zerotrust.audit.sinks import JsonLinesLog, LoggingLog, NullLog, StdoutLog

__all__ = ["DecisionLog", "JsonLinesLog", "LoggingLog", "NullLog", "StdoutLog", "audit_record"]
