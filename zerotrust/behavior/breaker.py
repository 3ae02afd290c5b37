"""A circuit breaker, so a dead store is not hammered and costs nothing per decision.

Closed: calls go through. After ``failures`` consecutive failures it opens: calls
fail at once for ``reset`` seconds (real time, whatever clock the PDP uses). Then
one trial call is let through (half-open); success closes it, failure re-opens it.
"""

from __future__ import annotations

import enum
import threading
import time
from collections.abc import Callable

__all__ = ["BreakerState", "CircuitBreaker"]


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    """Thread-safe; ``monotonic`` is injectable for tests."""

    def __init__(
        self,
        failures: int,
        reset: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failures
        self._reset = reset
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at = 0.0
        self._state = BreakerState.CLOSED
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the store now."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return True
            if self._state is BreakerState.OPEN:
                if self._monotonic() - self._opened_at < self._reset:
                    return False
                self._state = BreakerState.HALF_OPEN
                self._trial_running = False
            if self._trial_running:
                return False
            self._trial_running = True
            return True

    def success(self) -> BreakerState | None:
        """Record a success; return the new state if it changed."""
        with self._lock:
            self._failures = 0
            self._trial_running = False
            if self._state is BreakerState.CLOSED:
                return None
            self._state = BreakerState.CLOSED
            return self._state

    def failure(self) -> BreakerState | None:
        """Record a failure; return the new state if it changed."""
        with self._lock:
            self._failures += 1
            self._trial_running = False
            if self._state is BreakerState.HALF_OPEN or (
                self._state is BreakerState.CLOSED and self._failures >= self._threshold
            ):
                self._state = BreakerState.OPEN
                self._opened_at = self._monotonic()
                return self._state
            if self._state is BreakerState.OPEN:
                self._opened_at = self._monotonic()
            return None
