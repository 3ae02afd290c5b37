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
    """``timeout_ms``: the longest z3 may spend on one query (then: no finding)."""

    timeout_ms: int = 5000


@attrs.frozen
class Finding:
    """One proved problem, at the condition (or rule) it is about.

    ``kind`` is one of ``dead-rule``, ``never-true``, ``shadowed-allow``,
    ``always-matches``, ``duplicate-condition``, ``dead-signal``; ``ref`` is
    ``policy/rule`` or ``policy/signal``; ``related`` the other rules the proof used;
    ``example`` values a request could have for the situation described, or None.
    """

    kind: str
    file: str
    line: int
    column: int
    ref: str
    message: str
    related: tuple[str, ...] = ()
    example: dict[str, Any] | None = attrs.field(default=None, eq=False, hash=False)


@attrs.frozen
class LintReport:
    """The findings, in file order, and how many questions z3 left undecided within the
    timeout (each gave no finding: raise the timeout to have them decided)."""

    findings: tuple[Finding, ...]
    undecided: int = 0
