"""The validated policy model: plain frozen values with the positions diagnostics need."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from zerotrust.decision import Effect, Obligation, StepUp

__all__ = ["CelSource", "PolicySpec", "RuleSpec", "SignalSpec", "Target"]


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
