"""The built-in decision-log sinks: JSON lines, ``logging`` and null."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from zerotrust.audit.record import audit_record
from zerotrust.decision import Decision
from zerotrust.request import AccessRequest

__all__ = ["JsonLinesLog", "LoggingLog", "NullLog"]


class NullLog:
    """Discards every decision (benchmarks, or when the host logs by itself)."""

    def emit(self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]) -> None:
        return None


class JsonLinesLog:
    """Appends one JSON object per line; each line is written and flushed before return.

    ``fsync=True`` also forces it to disk (slower; for audit trails that must survive
    a power cut). Thread-safe: lines from concurrent decisions never interleave.
    """

    def __init__(
        self, path: str | Path, *, redact: Iterable[str] = (), fsync: bool = False
    ) -> None:
        self.path = Path(path)
        self.redact = tuple(redact)
        self.fsync = fsync
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")

    def emit(self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]) -> None:
        line = json.dumps(
            audit_record(decision, request, redact=self.redact, extra=extra),
            separators=(",", ":"),
            ensure_ascii=False,
        )
        with self._lock:
            self._file.write(line + "\n")
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> JsonLinesLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class LoggingLog:
    """Sends each decision to a :mod:`logging` logger as one JSON message."""

    def __init__(
        self,
        logger: logging.Logger | str = "zerotrust.decisions",
        *,
        level: int = logging.INFO,
        redact: Iterable[str] = (),
    ) -> None:
        self.logger = logging.getLogger(logger) if isinstance(logger, str) else logger
        self.level = level
        self.redact = tuple(redact)

    def emit(self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]) -> None:
        if not self.logger.isEnabledFor(self.level):
            return
        record = audit_record(decision, request, redact=self.redact, extra=extra)
        self.logger.log(self.level, "%s", json.dumps(record, separators=(",", ":")))
