"""Per-connection bounds of ``zerotrust serve``: time, number and file descriptors.

uvicorn bounds header size (h11, 16 KiB) and idle keep-alive time, but nothing bounds
how long a client may take to send a request: ``timeout_keep_alive`` restarts on every
byte, and there is no timer at all before the first request (uvicorn issue 157).
:class:`DeadlineProtocol` adds that timer, so a slow client holds a connection for
``request_timeout`` at most while the server waits for its request, and twice that
once the request is in the app (which answers 408 or 503 by ``request_timeout``).

Nor does anything bound how many connections are open. Past the open-file limit,
asyncio's accept loop fails, logs a traceback for every pending connection and
retries, and every client, ``/healthz`` included, is refused. :class:`Connections`
keeps the number open below what the limit allows: at the bound the connection idle
the longest (waiting for a request, as a flood's connections do) is closed to make
room, so a client that sends its request at once is still served.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable
from typing import Any

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = [
    "MIN_OPEN_FILES",
    "Connections",
    "DeadlineProtocol",
    "ThrottleWarnings",
    "Throttled",
    "accept_errors",
    "capacity",
    "raise_open_file_limit",
]

_log = logging.getLogger("zerotrust.server")
_LARGEST_BACKLOG = 128
_SMALLEST_BACKLOG = 8
#: File descriptors kept for the process's own files (standard streams, the event
#: loop, listening sockets, the decision log, policy reloads, JWKS fetches).
_RESERVED_FILES = 64
#: The lowest open-file limit to serve with (it leaves room for 40 connections).
MIN_OPEN_FILES = 128
#: When the soft limit has no hard limit above it: as high as Linux goes by default.
_UNLIMITED_TARGET = 1 << 20


def raise_open_file_limit() -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard limit where the system allows (a
    process may do so unprivileged); the soft limit in force after, None on platforms
    without one (Windows)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = _UNLIMITED_TARGET if hard == resource.RLIM_INFINITY else hard
    if soft != resource.RLIM_INFINITY and soft < target:
        # OSError, ValueError: a ceiling below the hard limit (macOS, Linux's nr_open)
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return None if soft == resource.RLIM_INFINITY else int(soft)


def capacity(open_files: int | None, wanted: int) -> tuple[int, int] | None:
    """``(connections, backlog)`` for a process allowed ``open_files`` descriptors, or
    None when that is too few to serve (fewer than :data:`MIN_OPEN_FILES`).

    asyncio accepts up to ``backlog`` connections in one turn of the loop, before any
    of them reaches :class:`Connections`, and a closed connection's descriptor is
    released a turn later; so the bound keeps three backlogs and the process's own
    files free, and accept() never runs out of descriptors.
    """
    if open_files is None:
        return wanted, _LARGEST_BACKLOG
    if open_files < MIN_OPEN_FILES:
        return None
    backlog = min(_LARGEST_BACKLOG, max(_SMALLEST_BACKLOG, open_files // 16))
    return min(wanted, open_files - _RESERVED_FILES - 3 * backlog), backlog


class _Window:
    """At most one event per ``interval`` seconds passes; the others are counted."""

    def __init__(self, interval: float, clock: Callable[[], float]) -> None:
        self._interval = interval
        self._clock = clock
        self._next = -math.inf
        self._held = 0

    def allow(self) -> int | None:
        """None to hold this event back, else how many were held back before it."""
        now = self._clock()
        if now < self._next:
            self._held += 1
            return None
        self._next = now + self._interval
        held, self._held = self._held, 0
        return held


_MORE = " (and %d more like it since the last such line)"


class Throttled:
    """One kind of log line, at most once per ``interval`` seconds; the lines held back
    are counted in the next one. A flood of connections must not become a flood of
    log lines (each one a write the attacker gets for free)."""

    def __init__(
        self, level: int, interval: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._level = level
        self._window = _Window(interval, clock)

    def __call__(self, message: str, *args: object) -> None:
        held = self._window.allow()
        if held is None:
            return
        if held:
            message, args = message + _MORE, (*args, held)
        _log.log(self._level, message, *args)


class ThrottleWarnings(logging.Filter):
    """A logging filter: each kind of WARNING (its message template) at most once per
    ``interval`` seconds. For uvicorn's "Invalid HTTP request received.", which any
    client can cause once per connection."""

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._windows: dict[str, _Window] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.WARNING:
            return True
        key = str(record.msg)
        window = self._windows.get(key)
        if window is None:
            if len(self._windows) >= 100:  # templates, not values: a few in practice
                self._windows.clear()
            window = self._windows[key] = _Window(self._interval, self._clock)
        held = window.allow()
        if held is None:
            return False
        if held and isinstance(record.args, tuple):
            record.msg, record.args = key + _MORE, (*record.args, held)
        return True


class Connections:
    """The open connections of one server, at most ``limit``; event-loop thread only.

    Each connection is idle (waiting for a request) or busy (a request in the app).
    At the limit a new connection closes the one idle the longest, or is closed itself
    when every connection is busy. Cost: a dict operation per change of state.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._idle: dict[DeadlineProtocol, None] = {}  # oldest first
        self._busy: set[DeadlineProtocol] = set()
        self._report = Throttled(logging.WARNING)

    def __len__(self) -> int:
        return len(self._idle) + len(self._busy)

    def admit(self, connection: DeadlineProtocol) -> bool:
        """Whether ``connection`` may stay open (then it is idle, and counted)."""
        if len(self) >= self.limit:
            if not self._idle:
                self._report(
                    "at the connection limit (%d), every connection busy: closing new ones",
                    self.limit,
                )
                return False
            oldest = next(iter(self._idle))
            del self._idle[oldest]
            oldest.close_now()
            self._report(
                "at the connection limit (%d): closing the connections idle the longest",
                self.limit,
            )
        self._idle[connection] = None
        return True

    def busy(self, connection: DeadlineProtocol) -> None:
        if self._idle.pop(connection, False) is None:
            self._busy.add(connection)

    def idle(self, connection: DeadlineProtocol) -> None:
        if connection in self._busy:
            self._busy.discard(connection)
            self._idle[connection] = None  # the newest idle one now

    def discard(self, connection: DeadlineProtocol) -> None:
        self._idle.pop(connection, None)
        self._busy.discard(connection)


class DeadlineProtocol(H11Protocol):
    """uvicorn's h11 protocol with a deadline on every connection, counted in
    :class:`Connections`.

    Waiting for a request (from the connection's opening, or from the first byte
    after the previous response) may take ``timeout``; a request inside the app may
    take ``2 * timeout`` (the app answers by ``timeout``; the rest lets a slow reader
    take its answer). Past either, the connection is closed. Only the asyncio
    ``Protocol`` methods and uvicorn's ``app`` attribute are used.
    """

    timeout: float = 5.0  # set per server by make_server
    registry: Connections  # set per server by make_server (uvicorn has .connections)
    slow: Throttled  # set per server by make_server

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timer: asyncio.TimerHandle | None = None
        # Requests in the app: a pipelined one may start before the previous one returns.
        self._in_app = 0
        inner = self.app

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self._in_app += 1
            if self._in_app == 1:
                self.registry.busy(self)
            self._arm(2 * self.timeout)
            try:
                await inner(scope, receive, send)
            finally:
                self._in_app -= 1
                if not self._in_app:
                    self._disarm()
                    self.registry.idle(self)

        self.app = app

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[arg-type]
        if not self.registry.admit(self):
            self.close_now()
            return
        self._arm(self.timeout)

    def data_received(self, data: bytes) -> None:
        if self._timer is None and not self._in_app:
            self._arm(self.timeout)
        super().data_received(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.registry.discard(self)
        super().connection_lost(exc)

    def close_now(self) -> None:
        """Close at once, dropping anything unsent (room for a new connection)."""
        self._disarm()
        self.transport.abort()

    def _arm(self, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expired(self) -> None:
        self._timer = None
        if not self.transport.is_closing():
            client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
            what = "answered" if self._in_app else "a whole request received"
            self.slow("closed the connection of %s: not %s within the timeout", client, what)
            self.transport.close()


def accept_errors(report: Throttled) -> Callable[[asyncio.AbstractEventLoop, dict[str, Any]], None]:
    """An event-loop exception handler: asyncio's "socket.accept() out of system
    resource" (one per pending connection, with a traceback) as one throttled line;
    anything else to the loop's default handler."""

    def handle(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exception = context.get("exception")
        if context.get("message") == "socket.accept() out of system resource":
            report("cannot accept connections: %s; retrying in a second", exception)
            return
        loop.default_exception_handler(context)

    return handle
