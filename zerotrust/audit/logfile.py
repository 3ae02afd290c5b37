"""Reading a decision log back: a file or standard input, plain or gzip'ed (by its
content, whatever its name), line by line in bounded memory. Used by ``zerotrust
report`` and ``zerotrust replay``."""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, cast

from zerotrust.errors import ZeroTrustError

__all__ = ["log_lines", "open_log", "parse_entry"]

_GZIP_MAGIC = b"\x1f\x8b"
# How many '{"' of a prefixed line are tried as the start of the entry.
_STARTS_TRIED = 8


@contextlib.contextmanager
def open_log(path: str | os.PathLike[str], stdin: IO[bytes] | None = None) -> Iterator[IO[bytes]]:
    """The log at ``path`` (``-``: ``stdin``, left open) as a binary stream, gunzipped
    when it starts like gzip (whatever its name). Raises ``OSError`` if it cannot be
    opened."""
    with contextlib.ExitStack() as stack:
        if str(path) == "-":
            if stdin is None:
                raise ZeroTrustError("a log read from - needs the stdin stream")
            stream = stdin  # the caller's: not closed here
        else:
            stream = stack.enter_context(Path(path).open("rb"))
        peek = getattr(stream, "peek", None)
        if peek is None:
            reader = io.BufferedReader(cast(io.RawIOBase, stream))
            stream, peek = cast(IO[bytes], reader), reader.peek
        if bytes(peek(2))[:2] == _GZIP_MAGIC:
            stream = cast(IO[bytes], stack.enter_context(gzip.GzipFile(fileobj=stream)))
        yield stream


def log_lines(stream: IO[bytes], limit: int, name: str = "") -> Iterator[tuple[int, bytes | None]]:
    """The stream's lines (1-based number, bytes without the newline); None for one
    longer than ``limit`` bytes, read past in chunks and never held whole. A gzip stream
    cut short or corrupt raises ``OSError`` (prefixed with ``name`` when given)."""
    number = 0
    while True:
        line = _read(stream, limit + 1, name)
        if not line:
            return
        number += 1
        if line.endswith(b"\n"):
            yield number, line[:-1]
        elif len(line) <= limit:
            yield number, line  # the last line, without its newline (a torn write?)
        else:
            while line and not line.endswith(b"\n"):
                line = _read(stream, 1 << 16, name)
            yield number, None


def _read(stream: IO[bytes], limit: int, name: str) -> bytes:
    try:
        return stream.readline(limit)
    except (EOFError, zlib.error) as exc:
        where = f"{name}: " if name else ""
        raise OSError(f"{where}compressed data is cut short or corrupt ({exc})") from exc


def parse_entry(line: bytes, loads: Callable[[bytes], Any]) -> Any:
    """The JSON value of a log line: the whole line, or, for a line that a logging format
    prefixed (``2026-03-02 14:30:00 INFO zerotrust.decisions: {...}``, ``LoggingLog``
    through an ordinary handler), the rest of the line from the first ``{"`` at which it
    parses. Raises what ``loads`` raises for the whole line when no start parses."""
    if line.lstrip()[:1] != b"{":
        start = line.find(b'{"')
        for _ in range(_STARTS_TRIED):
            if start <= 0:
                break
            try:
                return loads(line[start:])
            except (ValueError, RecursionError):
                start = line.find(b'{"', start + 1)
    return loads(line)
