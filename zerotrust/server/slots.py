"""Where a decision runs: places for requests in flight, worker threads, the event loop.

A decision takes microseconds when the PDP does no blocking I/O; a thread hop for it
costs more than the decision, and under load the worker waits for the GIL behind the
event loop (up to the interpreter's switch interval, 5 ms). So a server whose PDP
does no blocking I/O (:class:`Inline`) decides small requests on the event loop, as
long as its decisions stay quick; anything else runs in a few worker threads
(:class:`Slots`), where a slow decision cannot hold up ``/healthz`` or other answers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ["INLINE_BODY_BYTES", "INLINE_SECONDS", "Inline", "Slot", "Slots"]

#: A decision on the event loop may take this long (CPU time: it waits on nothing).
#: Two that take longer, the second within a hundred times its duration of the first
#: (quick ones between them or not), send the next ones to worker threads for a hundred
#: times as long (at most :data:`INLINE_PAUSE_SECONDS`), so slow decisions hold up
#: the loop for about 1% of the time at most; a one-off (the first decision, a full
#: garbage collection, a store's upkeep) pauses nothing.
INLINE_SECONDS = 0.002
#: Requests with bodies up to this size may be decided on the event loop: what a
#: condition can do grows with the request (a comprehension over a list it sends),
#: and a small body bounds what one unexpected slow decision can hold up.
INLINE_BODY_BYTES = 4096
INLINE_PAUSE_SECONDS = 30.0


class Inline:
    """Whether to decide a request on the event loop: allowed for this server, a small
    body, and no pause for decisions over :data:`INLINE_SECONDS`. Used from the event
    loop only."""

    def __init__(self, allowed: bool, clock: Callable[[], float] = time.monotonic) -> None:
        self._allowed = allowed
        self._clock = clock
        self._paused_until = 0.0
        self._last_slow: float | None = None  # when the last decision past the bound ended

    def fits(self, body_size: int) -> bool:
        return (
            self._allowed
            and body_size <= INLINE_BODY_BYTES
            and (not self._paused_until or self._clock() >= self._paused_until)
        )

    def took(self, seconds: float) -> None:
        """A decision on the loop took ``seconds``. One past the bound alone (a cold
        start, a store's upkeep) pauses nothing; a second one within 100 times its own
        duration of the first, whatever quick ones ran between them, pauses inlining
        for 100 times as long (at most :data:`INLINE_PAUSE_SECONDS`): slow decisions
        then hold the loop for at most about 1% of the time."""
        if seconds <= INLINE_SECONDS:
            return
        now = self._clock()
        last, self._last_slow = self._last_slow, now
        if last is not None and now - last <= 100 * seconds:
            self._paused_until = now + min(INLINE_PAUSE_SECONDS, 100 * seconds)
            self._last_slow = None


class Slots:
    """Places for requests in flight, and the few worker threads that may run decisions.

    A place is taken on the event loop and given back from any thread. Decisions run
    at most ``running`` at a time: each extra thread running Python code takes turns
    with the event loop for the GIL, so many would slow ``/healthz`` and every answer
    (and more threads decide no faster). The others wait, holding their place, and are
    never run once their deadline has passed.
    """

    def __init__(self, size: int, running: int) -> None:
        self._free = size
        self._lock = threading.Lock()
        self.running = threading.BoundedSemaphore(running)

    def take(self) -> Slot | None:
        with self._lock:
            if self._free <= 0:
                return None
            self._free -= 1
        return Slot(self)

    def give(self) -> None:
        with self._lock:
            self._free += 1


class Slot:
    """One request's place, given back exactly once: by the request if its decision
    never started, else by the worker thread when the decision ends, even if the
    request stopped waiting for it at the deadline."""

    def __init__(self, slots: Slots) -> None:
        self._slots = slots
        self._lock = threading.Lock()
        self._state = "held"  # -> "running" (a worker has it) -> "free"

    def run(
        self, operation: Callable[[], dict[str, Any]], deadline: float
    ) -> dict[str, Any] | None:
        """In a worker thread: ``operation()`` once a running place is free, or None
        (nothing run) if the deadline passes first or the request already gave up."""
        if not self._slots.running.acquire(timeout=max(0.0, deadline - time.monotonic())):
            return None
        try:
            with self._lock:
                if self._state != "held":
                    return None
                self._state = "running"
            try:
                return operation()
            finally:
                with self._lock:
                    self._state = "free"
                self._slots.give()
        finally:
            self._slots.running.release()

    def release(self) -> None:
        """On the event loop, when the request ends: give the place back unless a
        worker is running its decision (the worker gives it back then)."""
        with self._lock:
            if self._state != "held":
                return
            self._state = "free"
        self._slots.give()
