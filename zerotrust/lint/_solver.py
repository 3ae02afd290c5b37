"""One z3 solver for a lint run: each question is pushed, checked and popped, within the
per-question timeout and the run's overall budget.

An answer of ``unknown`` (a timeout, or the budget spent so the question was not asked)
is no proof: it is counted as undecided and gives no finding.
"""

from __future__ import annotations

import time
from typing import Any

import z3  # type: ignore[import-untyped, import-not-found, unused-ignore]

from zerotrust.lint._encode import Encoder
from zerotrust.lint._model import LintOptions

__all__ = ["Solver"]


class Solver:
    """The axioms of ``encoder`` and the questions asked on top of them."""

    def __init__(self, encoder: Encoder, options: LintOptions, started: float) -> None:
        """``started``: when the run began (``time.monotonic()``), for ``max_seconds``."""
        self.encoder = encoder
        self.solver = z3.Solver()
        self._timeout_ms = options.timeout_ms
        self._deadline = None if options.max_seconds is None else started + options.max_seconds
        self.solver.add(*encoder.axioms)
        #: Questions answered ``unknown``, or not asked once the budget was spent.
        self.undecided = 0
        #: Whether the overall budget ran out before every question was asked.
        self.out_of_time = False

    def _budget_ms(self) -> int | None:
        """The timeout for the next question, or None when the budget is spent."""
        if self._deadline is None:
            return self._timeout_ms
        left = int((self._deadline - time.monotonic()) * 1000)
        if left <= 0:
            self.out_of_time = True
            return None
        return min(self._timeout_ms, left)

    def check(
        self, formulas: tuple[Any, ...], *assumptions: Any, model: bool = False, aside: bool = False
    ) -> tuple[Any, Any]:
        """The answer, and the model (if asked for and sat) or unsat core (if assumed).
        ``aside``: a question for a sample, not a finding (not counted if undecided)."""
        timeout = self._budget_ms()
        if timeout is None:
            self.undecided += not aside
            return z3.unknown, None
        self.solver.set("timeout", timeout)
        self.solver.push()
        try:
            self.solver.add(*formulas)
            answer = self.solver.check(*assumptions)
            if answer == z3.unknown and not aside:
                self.undecided += 1
            if answer == z3.sat and model:
                return answer, self.solver.model()
            if answer == z3.unsat and assumptions:
                return answer, list(self.solver.unsat_core())
            return answer, None
        finally:
            self.solver.pop()

    def unsat(self, *formulas: Any) -> bool:
        """Proved impossible; ``unknown`` (a timeout) is not a proof."""
        return bool(self.check(formulas)[0] == z3.unsat)

    def answer(self, *formulas: Any) -> Any:
        """``z3.sat``, ``z3.unsat`` or ``z3.unknown``."""
        return self.check(formulas)[0]

    def model(self, *formulas: Any) -> Any | None:
        answer, found = self.check(formulas, model=True)
        return found if answer == z3.sat else None

    def core(self, base: Any, named: dict[str, Any]) -> list[str] | None:
        """The names of a set of ``named`` formulas that, with ``base``, are unsat."""
        guards = {z3.Bool(f"guard {name}"): name for name in named}
        implied = tuple(z3.Implies(g, named[n]) for g, n in guards.items())
        answer, core = self.check((base, *implied), *guards)
        if answer != z3.unsat:
            return None
        return sorted(guards[g] for g in core)
