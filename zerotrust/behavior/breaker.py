"""A circuit breaker, so a dead store is not hammered and costs nothing per decision.

Closed: calls go through; ``failures`` failures in a row open it. Open: calls are
refused at once (:class:`CircuitOpenError`) for ``reset`` seconds of monotonic time
(whatever clock the PDP uses). Then half-open: one trial call goes through and the
others are refused; the trial's success closes the breaker, its failure opens it
again, and any other ending (an exception that says nothing about the store, a
cancelled task) makes the next call the trial.

Calls go through :meth:`CircuitBreaker.call` / :meth:`CircuitBreaker.call_async`,
which record how every call ended in a ``finally``: no way in takes a trial without
giving it back, whatever the call raises. The result of a call admitted before the
breaker last opened is ignored (it says nothing about the store since).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from zerotrust.errors import ZeroTrustError

__all__ = ["BreakerState", "CircuitBreaker", "CircuitOpenError"]

_log = logging.getLogger("zerotrust.behavior")
_T = TypeVar("_T")


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitOpenError(ZeroTrustError, ConnectionError):
    """The breaker refused a call: the store failed recently (or a trial is running)."""


class _End(enum.Enum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    RELEASED = "released"  # ended in a way that says nothing about the store


def _any_exception(exc: BaseException) -> bool:
    return isinstance(exc, Exception)


class CircuitBreaker:
    """Thread-safe and usable from any event loop; ``monotonic`` is injectable for tests.

    ``is_failure(exc)`` says whether an exception a call raised is a failure of the
    store (default: any ``Exception``; a ``BaseException`` such as a cancellation never
    is). ``name`` is what the state-change warnings call the store.
    """

    def __init__(
        self,
        failures: int,
        reset: float,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        is_failure: Callable[[BaseException], bool] = _any_exception,
        name: str = "behaviour store",
    ) -> None:
        self._threshold = failures
        self._reset = reset
        self._monotonic = monotonic
        self._is_failure = is_failure
        self._name = name
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at = 0.0
        self._state = BreakerState.CLOSED
        self._trial = False
        self._epoch = 0  # how many times it opened: tells stale calls apart

    @property
    def state(self) -> BreakerState:
        """The state after the last call (``open`` until a call finds ``reset`` passed)."""
        return self._state

    @property
    def trial_running(self) -> bool:
        """Whether a half-open trial call is in flight."""
        return self._trial

    def call(self, fn: Callable[[], _T]) -> _T:
        """``fn()`` if the breaker admits it; raises :class:`CircuitOpenError` if not.

        Whatever ``fn`` returns or raises is passed on after it is recorded."""
        ticket = self._admit()
        end, error = _End.RELEASED, None
        try:
            result = fn()
            end = _End.SUCCEEDED
            return result
        except Exception as exc:
            error = exc
            if self._is_failure(exc):
                end = _End.FAILED
            raise
        finally:
            self._finish(ticket, end, error)

    async def call_async(self, fn: Callable[[], Awaitable[_T]]) -> _T:
        """As :meth:`call`, awaiting ``fn()``; a cancellation releases a trial."""
        ticket = self._admit()
        end, error = _End.RELEASED, None
        try:
            result = await fn()
            end = _End.SUCCEEDED
            return result
        except Exception as exc:
            error = exc
            if self._is_failure(exc):
                end = _End.FAILED
            raise
        finally:
            self._finish(ticket, end, error)

    def _elapsed(self) -> bool:
        return self._monotonic() - self._opened_at >= self._reset

    def _admit(self) -> tuple[int, bool]:
        """(epoch, is the trial) for an admitted call; raises when refused."""
        with self._lock:
            if self._state is BreakerState.CLOSED:
                return self._epoch, False
            if self._state is BreakerState.OPEN:
                if not self._elapsed():
                    raise CircuitOpenError(f"{self._name} circuit open")
                self._state = BreakerState.HALF_OPEN
            if self._trial:
                raise CircuitOpenError(f"{self._name} trial call running")
            self._trial = True
            return self._epoch, True

    def _finish(self, ticket: tuple[int, bool], end: _End, error: BaseException | None) -> None:
        epoch, trial = ticket
        with self._lock:
            before = self._state
            if trial:
                self._trial = False
                if end is _End.SUCCEEDED:
                    self._close()
                elif end is _End.FAILED:
                    self._open()
            elif epoch == self._epoch:  # admitted while closed, and it has not opened since
                if end is _End.SUCCEEDED:
                    self._failures = 0
                elif end is _End.FAILED:
                    self._failures += 1
                    if self._failures >= self._threshold:
                        self._open()
            after = self._state
        if after is before:
            return
        if after is BreakerState.OPEN:
            _log.warning(
                "%s unreachable, circuit open for %.1f s: %s",
                self._name,
                self._reset,
                f"{type(error).__name__}: {error}" if error is not None else "no answer",
            )
        elif after is BreakerState.CLOSED:
            _log.warning("%s reachable again, circuit closed", self._name)

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._monotonic()
        self._epoch += 1
        self._failures = 0

    def _close(self) -> None:
        self._state = BreakerState.CLOSED
        self._failures = 0
