"""CircuitBreaker: every way a call ends gives the trial back; transitions as documented."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    invariant,
    multiple,
    precondition,
    rule,
)
from strategies import BREAKER_ENDINGS, StoreDown, breaker_endings

from zerotrust.behavior.breaker import BreakerState, CircuitBreaker, CircuitOpenError

THRESHOLD = 3
RESET = 2.0
TIMEOUT = 1 / 16  # times are binary fractions, so the clock's sums are exact


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _breaker(clock: Clock) -> CircuitBreaker:
    return CircuitBreaker(
        THRESHOLD, RESET, clock, is_failure=lambda exc: isinstance(exc, StoreDown | TimeoutError)
    )


def _open(breaker: CircuitBreaker) -> None:
    for _ in range(THRESHOLD):
        with pytest.raises(StoreDown):
            breaker.call(_raise(StoreDown()))
    assert breaker.state is BreakerState.OPEN


def _raise(exc: BaseException) -> Any:
    def fn() -> Any:
        raise exc

    return fn


def test_a_trial_that_raises_an_unrelated_error_does_not_lock_the_breaker() -> None:
    # The reported fault: after an outage the trial raised UnicodeEncodeError, the
    # trial flag stayed set and every later call was refused while Redis was up.
    clock = Clock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.t += RESET
    with pytest.raises(UnicodeEncodeError):
        breaker.call(_raise(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates")))
    assert not breaker.trial_running
    assert breaker.call(lambda: "pong") == "pong"
    assert breaker.state is BreakerState.CLOSED


def test_a_cancelled_async_trial_does_not_lock_the_breaker() -> None:
    clock = Clock()
    breaker = _breaker(clock)
    _open(breaker)
    clock.t += RESET

    async def run() -> str:
        never = asyncio.get_running_loop().create_future()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(breaker.call_async(lambda: never), 0.01)
        assert not breaker.trial_running

        async def pong() -> str:
            return "pong"

        return await breaker.call_async(pong)

    assert asyncio.run(run()) == "pong"
    assert breaker.state is BreakerState.CLOSED


def test_a_failure_classifier_that_raises_still_releases_the_trial() -> None:
    clock = Clock()

    def classify(exc: BaseException) -> bool:
        if isinstance(exc, KeyError):
            raise LookupError("classifier bug")
        return isinstance(exc, StoreDown)

    breaker = CircuitBreaker(1, RESET, clock, is_failure=classify)
    with pytest.raises(StoreDown):
        breaker.call(_raise(StoreDown()))
    clock.t += RESET
    with pytest.raises(LookupError):
        breaker.call(_raise(KeyError("k")))
    assert not breaker.trial_running
    assert breaker.call(lambda: 1) == 1


def test_a_stale_failure_does_not_end_a_running_trial() -> None:
    """A call admitted before the breaker opened says nothing about the store since:
    it must neither end the trial nor let a second one start."""
    clock = Clock()
    breaker = CircuitBreaker(1, RESET, clock, is_failure=lambda exc: isinstance(exc, StoreDown))

    async def run() -> None:
        loop = asyncio.get_running_loop()
        slow = loop.create_future()
        stale = asyncio.ensure_future(breaker.call_async(lambda: slow))
        await asyncio.sleep(0)
        with pytest.raises(StoreDown):
            breaker.call(_raise(StoreDown()))
        clock.t += RESET
        trial_result = loop.create_future()
        trial = asyncio.ensure_future(breaker.call_async(lambda: trial_result))
        await asyncio.sleep(0)
        assert breaker.trial_running
        slow.set_exception(StoreDown())
        with pytest.raises(StoreDown):
            await stale
        assert breaker.trial_running and breaker.state is BreakerState.HALF_OPEN
        with pytest.raises(CircuitOpenError):
            breaker.call(lambda: None)
        trial_result.set_result("ok")
        assert await trial == "ok"

    asyncio.run(run())
    assert breaker.state is BreakerState.CLOSED


class _Model:
    """The documented behaviour, step by step: what the breaker must do."""

    def __init__(self) -> None:
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.trial = False
        self.epoch = 0

    def admit(self, now: float) -> tuple[int, bool] | None:
        if self.state is BreakerState.OPEN:
            if now - self.opened_at < RESET:
                return None
            self.state = BreakerState.HALF_OPEN
        if self.state is BreakerState.CLOSED:
            return (self.epoch, False)
        if self.trial:
            return None
        self.trial = True
        return (self.epoch, True)

    def end(self, ticket: tuple[int, bool], ending: str, now: float) -> None:
        epoch, trial = ticket
        failed = ending in ("store_error", "timeout")
        if trial:
            self.trial = False
            if ending == "success":
                self.state, self.failures = BreakerState.CLOSED, 0
            elif failed:
                self._open(now)
        elif epoch == self.epoch:
            if ending == "success":
                self.failures = 0
            elif failed:
                self.failures += 1
                if self.failures >= THRESHOLD:
                    self._open(now)

    def _open(self, now: float) -> None:
        self.state, self.opened_at, self.failures = BreakerState.OPEN, now, 0
        self.epoch += 1


class _Call:
    def __init__(self, future: asyncio.Future[Any], task: asyncio.Task[Any], ticket: Any) -> None:
        self.future, self.task, self.ticket = future, task, ticket


class BreakerMachine(RuleBasedStateMachine):
    """Overlapping calls (async tasks held open), each ending every way a call can
    end, sync calls between them, and time passing on an injected clock."""

    calls = Bundle("calls")

    def __init__(self) -> None:
        super().__init__()
        self.clock = Clock()
        self.breaker = _breaker(self.clock)
        self.model = _Model()
        self.loop = asyncio.new_event_loop()
        self.open_calls = 0

    def _tick(self) -> None:
        self.loop.run_until_complete(asyncio.sleep(0))

    @rule(target=calls, n=st.integers(1, 4))
    def start(self, n: int) -> Any:
        """``n`` calls at once; the refused ones leave nothing to finish."""
        started = []
        for _ in range(n):
            future: asyncio.Future[Any] = self.loop.create_future()
            task = self.loop.create_task(self.breaker.call_async(lambda f=future: f))
            self._tick()
            ticket = self.model.admit(self.clock.t)
            if ticket is None:
                assert task.done() and isinstance(task.exception(), CircuitOpenError)
                continue
            assert not task.done()
            self.open_calls += 1
            started.append(_Call(future, task, ticket))
        return multiple(*started)

    @rule(call=consumes(calls), ending=breaker_endings())
    def finish(self, call: _Call, ending: str) -> None:
        self.open_calls -= 1
        if ending == "timeout":
            self.clock.t += TIMEOUT
        if ending == "cancelled":
            call.task.cancel()
        else:
            error = BREAKER_ENDINGS[ending]()
            if error is None:
                call.future.set_result("reply")
            else:
                call.future.set_exception(error)
        self._tick()
        assert call.task.done()
        if ending == "success":
            assert call.task.result() == "reply"  # results pass through unchanged
        elif ending == "cancelled":
            assert call.task.cancelled()
        else:
            assert type(call.task.exception()) is type(BREAKER_ENDINGS[ending]())
        self.model.end(call.ticket, ending, self.clock.t)

    @rule(ending=breaker_endings().filter(lambda e: e != "cancelled"))
    def sync_call(self, ending: str) -> None:
        if ending == "timeout":
            self.clock.t += TIMEOUT
        error = BREAKER_ENDINGS[ending]()
        fn = (lambda: "reply") if error is None else _raise(error)
        ticket = self.model.admit(self.clock.t)
        if ticket is None:
            with pytest.raises(CircuitOpenError):
                self.breaker.call(fn)
            return
        if ending == "success":
            assert self.breaker.call(fn) == "reply"
        else:
            with pytest.raises(type(error)):
                self.breaker.call(fn)
        self.model.end(ticket, ending, self.clock.t)

    @rule(seconds=st.sampled_from([1 / 64, 0.5, RESET - 1 / 16, RESET, RESET + 1, 60.0]))
    def advance(self, seconds: float) -> None:
        self.clock.t += seconds

    @precondition(lambda self: self.open_calls == 0)
    @rule()
    def healthy_store_is_let_through_after_reset(self) -> None:
        """Never stuck: with nothing in flight, ``reset`` seconds later a call goes
        through, and its success closes the breaker."""
        self.clock.t += RESET
        ticket = self.model.admit(self.clock.t)
        assert ticket is not None
        assert self.breaker.call(lambda: "pong") == "pong"
        self.model.end(ticket, "success", self.clock.t)
        assert self.breaker.state is BreakerState.CLOSED

    @invariant()
    def agrees_with_the_model(self) -> None:
        assert self.breaker.state is self.model.state
        assert self.breaker.trial_running is self.model.trial

    @invariant()
    def at_most_one_trial(self) -> None:
        assert not (self.breaker.state is BreakerState.CLOSED and self.breaker.trial_running)

    def teardown(self) -> None:
        for task in asyncio.all_tasks(self.loop):
            task.cancel()
        self.loop.run_until_complete(asyncio.sleep(0))
        self.loop.close()


BreakerMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None)
test_breaker_state_machine = BreakerMachine.TestCase
