"""What the linter reports, and how it is configured: plain values, no z3 needed."""

from __future__ import annotations

from typing import Any

import attrs

__all__ = ["KINDS", "Finding", "LintOptions", "LintReport"]

#: Every kind of finding, in the order the documentation explains them.
KINDS = (
    "dead-rule",
    "never-true",
    "shadowed-allow",
    "always-matches",
    "duplicate-condition",
    "dead-signal",
)


@attrs.frozen
class LintOptions:
    """``timeout_ms``: the longest z3 may spend on one question; ``max_seconds``: on the
    whole run (None: no limit). A question not decided in time gives no finding."""

    timeout_ms: int = 5000
    max_seconds: float | None = None


@attrs.frozen
class Finding:
    """One proved problem, at the condition (or rule) it is about.

    ``kind`` is one of ``dead-rule``, ``never-true``, ``shadowed-allow``,
    ``always-matches``, ``duplicate-condition``, ``dead-signal``; ``ref`` is
    ``policy/rule`` or ``policy/signal``; ``related`` the other rules the proof used;
    ``example`` values a request could have for the situation described, or None;
    ``example_with`` the values of ``risk`` and ``behavior`` (which the engine computes,
    a request never carries) that the example was checked with, or None.
    """

    kind: str
    file: str
    line: int
    column: int
    ref: str
    message: str
    related: tuple[str, ...] = ()
    example: dict[str, Any] | None = attrs.field(default=None, eq=False, hash=False)
    example_with: dict[str, Any] | None = attrs.field(default=None, eq=False, hash=False)


@attrs.frozen
class LintReport:
    """The findings, in file order, and how many questions z3 left undecided within the
    timeout or the overall budget (each gave no finding: raise the limit to have them
    decided); ``out_of_time`` when the budget ran out before every question was asked."""

    findings: tuple[Finding, ...]
    undecided: int = 0
    out_of_time: bool = False
