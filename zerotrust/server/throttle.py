"""Log lines a client can cause, at most once per interval each: a flood of
connections must not become a flood of log lines (each one a write the attacker gets
for free)."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

__all__ = ["ThrottleWarnings", "Throttled", "accept_errors"]

_log = logging.getLogger("zerotrust.server")


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
