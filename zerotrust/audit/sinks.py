"""The built-in decision-log sinks: JSON lines, ``logging`` and null."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from zerotrust.audit.record import entry, redaction_paths
from zerotrust.decision import Decision
from zerotrust.errors import DecisionLogError
from zerotrust.request import AccessRequest

try:  # POSIX: whole-line appends from several processes exclude each other
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

try:  # the `fast` extra: encodes a line about ten times faster than the json module
    import orjson
except ImportError:  # pragma: no cover - exercised by monkeypatching in the tests
    orjson = None  # type: ignore[assignment]

__all__ = ["JsonLinesLog", "LoggingLog", "NullLog", "StdoutLog"]

# JSON allows these raw inside strings, but str.splitlines() breaks lines at them.
_LINE_BREAKS = ("\x85", "\u2028", "\u2029")
# The same in UTF-8, with their escapes. Each starts with a lead byte, which never
# occurs inside another character's encoding, so a bytes replace is exact.
_LINE_BREAK_BYTES = tuple((c.encode(), f"\\u{ord(c):04x}".encode()) for c in _LINE_BREAKS)
# Built once: json.dumps with options builds an encoder per call (a microsecond a line).
_STRICT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class NullLog:
    """Discards every decision (benchmarks, or when the host logs by itself)."""

    def emit(self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]) -> None:
        return None


class StdoutLog:
    """One JSON line a decision on standard output (file descriptor 1), for a
    container's log collector.

    The descriptor the process was given, not ``/dev/stdout`` opened again: a second
    open file would have its own offset, and its lines would overwrite what the process
    writes to ``sys.stdout`` when that is a file. Each line is encoded whole, then
    written by ``write(2)`` before ``emit`` returns (one call for a line of at most
    ``PIPE_BUF`` bytes, so processes sharing a pipe never interleave such lines); a
    failed write raises :class:`DecisionLogError`, which the PDP counts.
    """

    def __init__(self, *, redact: Iterable[str] = (), fd: int = 1) -> None:
        self.redact = tuple(redact)
        self._paths = redaction_paths(self.redact)
        self._fd = fd
        self._lock = threading.Lock()

    def emit(self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]) -> None:
        view = memoryview(encode_line(entry(decision, request, self._paths, extra)))
        with self._lock:
            try:
                while view:
                    view = view[os.write(self._fd, view) :]
            except OSError as exc:
                raise DecisionLogError(f"standard output: {exc.strerror}") from exc

    def close(self) -> None:
        """Nothing to release: the descriptor is the process's own."""


class JsonLinesLog:
    """Appends one JSON object per line: each line whole, or not at all and counted.

    A line is built and encoded completely first, then handed to the OS in one
    ``write(2)`` on a file opened with ``O_APPEND``, before ``emit`` (so ``evaluate``)
    returns; there is no buffer in Python, so nothing of a failed line is written
    later. A write cut short (disk full, file size limit) is cut back off the file
    and raises :class:`DecisionLogError`, which the PDP counts in
    ``decision_log_failures``. Before each line the path is checked: a file renamed
    or removed (log rotation) is noticed and ``path`` opened again. ``fsync=True``
    also forces each line to disk (for power loss). Thread-safe, and processes that
    append to one file through this class never interleave or tear lines (POSIX
    record lock around each write). A new file is created readable by its owner only.

    Raises :class:`DecisionLogError` (an ``OSError``) if ``path`` cannot be opened,
    and :class:`~zerotrust.errors.ZeroTrustError` for a bad ``redact`` path.
    """

    def __init__(
        self, path: str | Path, *, redact: Iterable[str] = (), fsync: bool = False
    ) -> None:
        self.path = Path(path)
        self.redact = tuple(redact)
        self.fsync = fsync
        self._paths = redaction_paths(self.redact)
        self._where = os.path.abspath(path)  # the same file if the process changes directory
        self._lock = threading.Lock()
        self._torn = False  # a fragment we could not remove ends the file
        self._file: io.FileIO | None = None
        self._file, self._identity = self._open()

    def emit(self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]) -> None:
        """Write the decision's line; raise if it was not written whole (see the class)."""
        data = encode_line(entry(decision, request, self._paths, extra))
        with self._lock:
            file = self._current()
            self._append(file, data)
            if self.fsync:
                try:
                    os.fsync(file.fileno())
                except OSError as exc:
                    raise DecisionLogError(
                        f"decision log {self.path}: a line was written but could not be "
                        f"forced to disk: {exc.strerror}"
                    ) from exc

    def reopen(self) -> None:
        """Open ``path`` again now (say on SIGHUP after a rotation); lines already
        written stay where they are. Raises :class:`DecisionLogError` if it cannot."""
        with self._lock:
            self._reopen()

    def close(self) -> None:
        """Close the file; later ``emit`` calls raise. Closing twice is harmless."""
        with self._lock:
            file, self._file = self._file, None
        if file is not None:
            try:
                file.close()
            except OSError as exc:
                raise DecisionLogError(f"decision log {self.path}: close failed") from exc

    def __enter__(self) -> JsonLinesLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> tuple[io.FileIO, tuple[int, int]]:
        try:
            file = io.FileIO(self._where, "ab", opener=_private)
        except OSError as exc:
            raise DecisionLogError(f"cannot open decision log {self.path}: {exc.strerror}") from exc
        st = os.fstat(file.fileno())
        return file, (st.st_dev, st.st_ino)

    def _current(self) -> io.FileIO:
        """The open file, opened again first if ``path`` now names another file."""
        if self._file is None:
            raise DecisionLogError(f"decision log {self.path} is closed")
        try:
            st = os.stat(self._where)
        except FileNotFoundError:
            pass  # removed: create it again
        except OSError:
            return self._file  # cannot tell: the file we hold still keeps the line
        else:
            if (st.st_dev, st.st_ino) == self._identity:
                return self._file
        self._reopen()
        return self._file

    def _reopen(self) -> None:
        if self._file is None:
            raise DecisionLogError(f"decision log {self.path} is closed")
        old = self._file
        self._file, self._identity = self._open()
        self._torn = False  # a fragment, if any, was in the old file
        with contextlib.suppress(OSError):  # its lines were written; nothing is buffered
            old.close()

    def _append(self, file: io.FileIO, data: bytes) -> None:
        if self._torn:
            data = b"\n" + data  # end the fragment first: it stays one bad line alone
        fd = file.fileno()
        locked = _lock(fd)
        try:
            try:
                written = file.write(data)
            except OSError as exc:  # nothing was written (ENOSPC, EFBIG, EIO...)
                raise DecisionLogError(
                    f"could not write to decision log {self.path}: {exc.strerror}"
                ) from exc
            if written == len(data):
                self._torn = False
                return
            removed = _cut_back(fd, written or 0)
            self._torn = self._torn or not removed
            raise DecisionLogError(
                f"could not write a whole line to decision log {self.path} "
                f"({written} of {len(data)} bytes; the partial line was "
                f"{'removed' if removed else 'left, and is ended by the next line'})"
            )
        finally:
            if locked:
                _unlock(fd)


def _lock(fd: int) -> bool:
    """Take the file's POSIX write lock; without one (no ``fcntl``, or a file system
    that refuses locks) a line is still one whole O_APPEND write, so write anyway."""
    if fcntl is None:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
    except OSError:
        return False
    return True


def _unlock(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.lockf(fd, fcntl.LOCK_UN)


def _private(path: str, flags: int) -> int:
    """Open a new log readable by its owner only: it holds whole requests."""
    return os.open(path, flags | getattr(os, "O_CLOEXEC", 0), 0o600)


def _cut_back(fd: int, written: int) -> bool:
    """Remove the ``written`` bytes of a short append, if nobody appended after them."""
    try:
        end = os.lseek(fd, 0, os.SEEK_CUR)  # with O_APPEND: just after our bytes
        if os.fstat(fd).st_size != end:
            return False
        os.ftruncate(fd, end - written)
    except OSError:
        return False
    return True


def encode_line(record: Mapping[str, Any]) -> bytes:
    """One entry as one line of strict JSON in UTF-8, newline included.

    Raises ``TypeError``/``ValueError`` for what strict JSON cannot hold (an object,
    NaN): the caller counts that as a failed line. A string that is not valid
    Unicode (a lone surrogate; requests refuse them, ``extra`` may carry one) is
    written as a ``\\uXXXX`` escape, so the line is still written. U+0085, U+2028
    and U+2029 are written escaped, so ``str.splitlines()`` keeps the line whole.

    With ``orjson`` installed (the ``fast`` extra) it encodes the line; anything it
    refuses (a lone surrogate, a key that is not a ``str``, an integer beyond 64 bits)
    goes the ``json`` module's way, which decides as before. Every value an entry
    holds was checked finite before (requests, ``extra`` and ``behavior`` refuse NaN,
    policies refuse it at load), so orjson's writing NaN as ``null`` never applies.
    """
    if orjson is not None:
        try:
            data: bytes = orjson.dumps(record, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:  # orjson.JSONEncodeError: the json module decides below
            pass
        else:
            if data.isascii():
                return data
            for raw, escaped in _LINE_BREAK_BYTES:
                if raw in data:
                    data = data.replace(raw, escaped)
            return data
    text = _STRICT.encode(record)
    if text.isascii():
        return text.encode("ascii") + b"\n"
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError:
        text = json.dumps(record, separators=(",", ":"), allow_nan=False)
        return text.encode("ascii") + b"\n"
    for char in _LINE_BREAKS:
        if char in text:
            text = text.replace(char, f"\\u{ord(char):04x}")
            data = text.encode("utf-8")
    return data + b"\n"


class LoggingLog:
    """Sends each decision to a :mod:`logging` logger as one JSON message.

    The message is ASCII (non-ASCII characters as ``\\uXXXX``). A logger that would drop
    the message (not enabled for ``level``, or no handler up its hierarchy whose own level
    takes it, ``NullHandler`` aside, so only :mod:`logging`'s last-resort handler, which
    shows WARNING and above, would see it) makes
    ``emit`` raise :class:`DecisionLogError`: the decision is counted as lost, never
    dropped without a trace. What a handler does after that is up to :mod:`logging`: a
    failing handler reports through ``Handler.handleError`` and is not counted.
    """

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
        self._paths = redaction_paths(self.redact)

    def emit(self, decision: Decision, request: AccessRequest, extra: Mapping[str, Any]) -> None:
        logger = self.logger
        if not logger.isEnabledFor(self.level) or not _delivered(logger, self.level):
            raise DecisionLogError(
                f"logger {logger.name!r} would drop the entry (not enabled for "
                f"{logging.getLevelName(self.level)}, or no handler that takes it): configure "
                "logging, e.g. logging.basicConfig(level=logging.INFO), or use JsonLinesLog"
            )
        record = entry(decision, request, self._paths, extra)
        message = json.dumps(record, separators=(",", ":"), allow_nan=False)
        self.logger.log(self.level, "%s", message)

    def close(self) -> None:
        """Nothing to release (the logging configuration owns the handlers); here so
        every sink can be closed alike."""


def _delivered(logger: logging.Logger, level: int) -> bool:
    """Whether a record at ``level`` reaches a handler that takes it, walking the hierarchy
    as ``Logger.callHandlers`` does. Handler and logger filters are not consulted: a
    filter that drops decisions is the configuration's own choice."""
    current: logging.Logger | None = logger
    while current is not None:
        for handler in current.handlers:
            if level >= handler.level and not isinstance(handler, logging.NullHandler):
                return True
        if not current.propagate:
            return False
        current = current.parent
    return False
