"""The validated policy model: plain frozen values with the positions diagnostics need."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from zerotrust.decision import Effect, Obligation, StepUp

__all__ = [
    "CelSource",
    "Inlined",
    "InlinedPiece",
    "PolicySpec",
    "RuleSpec",
    "SignalSpec",
    "Target",
    "VariableSpec",
]


@attrs.frozen
class CelSource:
    """A CEL expression and where its YAML scalar starts in its file.

    ``raw`` is the scalar exactly as written and ``style`` its YAML style (None plain,
    quotes, ``|`` or ``>``): together they map a position inside the expression back
    to the file, through escapes, folding and indentation.
    """

    text: str
    file: str
    line: int
    column: int
    style: str | None = None
    raw: str | None = None
    #: The expression with the policy's variables inlined, when it reads any: what is
    #: compiled, and what tools that reason about the condition should read.
    inlined: Inlined | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def compiled_text(self) -> str:
        """The text that is compiled: ``inlined.text``, or ``text`` when no variable is read."""
        return self.text if self.inlined is None else self.inlined.text


@attrs.frozen
class InlinedPiece:
    """Characters ``start:end`` of an inlined text, and where they were written.

    ``verbatim`` pieces were copied from ``source.text`` at ``offset``; the others are
    the brackets put around a variable, and stand for the reference at ``offset``.
    ``variable`` is whose text it is (None: the condition's own), and ``anchor`` the
    offset, in the condition's own text, of the reference it was inlined through.
    ``library`` is the condition library the variable (or derived role,
    ``derived_roles.<name>``) belongs to, if any.
    """

    start: int
    end: int
    source: CelSource
    offset: int
    verbatim: bool
    variable: str | None
    anchor: int | None
    library: str | None = None


@attrs.frozen
class Inlined:
    """An expression with every ``variables.<name>`` replaced by ``(<its expression>)``;
    ``variables`` are the names read, directly or through other variables; ``values``
    each one's path as written (``variables.x``, ``derived_roles.y``) and inlined text,
    so ``explain`` can show its value."""

    text: str
    pieces: tuple[InlinedPiece, ...]
    variables: frozenset[str]
    values: tuple[tuple[str, str], ...] = ()

    def origin(self, offset: int) -> InlinedPiece | None:
        """The piece character ``offset`` of ``text`` came from (the last one at the end)."""
        for piece in self.pieces:
            if piece.start <= offset < piece.end:
                return piece
        return self.pieces[-1] if self.pieces else None


@attrs.frozen
class VariableSpec:
    """A named expression of a policy (``variables: {name: expression}``)."""

    name: str
    when: CelSource
    line: int
    column: int


@attrs.frozen
class Target:
    """Which requests a policy applies to; ``None`` means any."""

    resources: frozenset[str] | None = None
    actions: frozenset[str] | None = None


@attrs.frozen
class SignalSpec:
    name: str
    score: int
    when: CelSource | None
    line: int


@attrs.frozen
class RuleSpec:
    id: str
    effect: Effect
    when: CelSource | None
    reason: str | None
    report_only: bool
    step_up: StepUp | None
    obligations: tuple[Obligation, ...]
    line: int


@attrs.frozen
class PolicySpec:
    name: str
    description: str | None
    target: Target
    signals: tuple[SignalSpec, ...]
    rules: tuple[RuleSpec, ...]
    file: str
    line: int
    raw: Mapping[str, Any] = attrs.field(hash=False, eq=False, repr=False)
    #: Where the ``policy:`` name value is, for diagnostics about the name.
    name_line: int = 0
    name_column: int = 0
    #: The policy's variables, already inlined into the conditions that read them.
    variables: tuple[VariableSpec, ...] = ()
    #: The condition libraries the policy imports (``imports:``), by name.
    imports: tuple[str, ...] = ()
