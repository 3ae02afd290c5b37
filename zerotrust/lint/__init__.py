"""Static analysis of a policy set with an SMT solver: findings are proofs, not guesses.

Conditions are parsed with the project's own CEL parser and encoded for z3 (the
``z3-solver`` package, installed by the ``lint`` extra); what cannot be encoded is an
unknown, so the linter never calls a rule dead that can match. z3 is imported only
when the linter runs, so ``import zerotrust`` works without it.
"""

from __future__ import annotations

import os
from pathlib import PurePath

from zerotrust.errors import ZeroTrustError
from zerotrust.lint._model import KINDS, Finding, LintOptions, LintReport

__all__ = [
    "KINDS",
    "Finding",
    "LintOptions",
    "LintReport",
    "SolverUnavailableError",
    "lint_path",
]


class SolverUnavailableError(ZeroTrustError, ImportError):
    """Raised by :func:`lint_path` when z3 (the ``lint`` extra) is not installed."""


def lint_path(path: str | os.PathLike[str], options: LintOptions | None = None) -> LintReport:
    """The findings for the policies at ``path`` (a file or directory), in file order.

    The set is loaded as the engine loads it first, so invalid policies raise
    :class:`~zerotrust.errors.PolicyError` with every diagnostic.
    """
    try:
        from zerotrust.lint._analyse import lint_specs
    except ImportError as exc:
        if getattr(exc, "name", None) != "z3" and "z3" not in str(exc):
            raise
        raise SolverUnavailableError(
            "zerotrust lint needs the z3 SMT solver: pip install 'zerotrust[lint]'"
        ) from exc
    from zerotrust.lint._load import policy_specs

    return lint_specs(policy_specs(PurePath(path)), options)
