"""The one exception root and the diagnostics that policy errors carry.

Every error the library raises on purpose is a ``ZeroTrustError``; each subclass
also inherits the builtin that fits, so callers that already catch ``ValueError``
keep working.
"""

from __future__ import annotations

import attrs

__all__ = [
    "BehaviorConfigError",
    "BehaviorStoreError",
    "DecisionLogError",
    "DecisionUnavailableError",
    "Diagnostic",
    "IdentityError",
    "PolicyError",
    "RequestError",
    "StepUpError",
    "ZeroTrustError",
]


@attrs.frozen
class Diagnostic:
    """One problem found in a policy set, with where it is.

    ``line`` and ``column`` are 1-based; 0 means "the whole file". For CEL errors
    they point at the offending character inside the file, not inside the string.
    """

    file: str
    line: int
    column: int
    message: str
    policy: str | None = None
    rule: str | None = None

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        subject = ""
        if self.policy is not None:
            subject = self.policy if self.rule is None else f"{self.policy}/{self.rule}"
            subject = f" [{subject}]"
        return f"{where}:{subject} {self.message}"


class ZeroTrustError(Exception):
    """Root of every error this library raises deliberately."""


class PolicyError(ZeroTrustError, ValueError):
    """A policy set could not be loaded; ``diagnostics`` lists every problem found.

    Raised by loading and reloading. A set with any diagnostic is never partly used.
    """

    def __init__(self, diagnostics: list[Diagnostic] | tuple[Diagnostic, ...]) -> None:
        self.diagnostics: tuple[Diagnostic, ...] = tuple(diagnostics)
        count = len(self.diagnostics)
        head = f"{count} problem{'s' if count != 1 else ''} in policy set"
        body = "\n".join(f"  {d}" for d in self.diagnostics)
        super().__init__(f"{head}:\n{body}" if body else head)


class RequestError(ZeroTrustError, ValueError):
    """A request given to the PDP is malformed; ``field`` names the offending path.

    Raised before any policy runs, so nothing is half-evaluated.
    """

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.reason = message
        super().__init__(f"{field}: {message}")


class IdentityError(ZeroTrustError, ValueError):
    """A token or attestation could not be verified.

    ``code`` is stable and machine-readable; the message never contains the token.
    """

    code: str = "invalid_token"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        if code is not None:
            self.code = code
        super().__init__(message)


class StepUpError(ZeroTrustError, ValueError):
    """A :class:`~zerotrust.decision.StepUp` was given values a challenge cannot carry
    (an acr value that is not one RFC 6749 NQCHAR token, a ``max_age`` out of range).

    Raised where the step-up is built, so nothing malformed reaches a header.
    """


class BehaviorConfigError(ZeroTrustError, ValueError):
    """A :class:`~zerotrust.behavior.config.BehaviorConfig` field is out of its range
    or of the wrong type; the message names the field and what it must be.

    Raised when the configuration is constructed, never later by a store.
    """


class BehaviorStoreError(ZeroTrustError, RuntimeError):
    """The recent-behaviour store failed; the PDP then sets ``behavior.available`` false."""


class DecisionLogError(ZeroTrustError, OSError):
    """A decision-log line was not written whole: the file could not be opened,
    reopened after a rotation or written (disk full, size limit), or is closed.

    Raised by a sink's ``emit``; the PDP counts it in ``decision_log_failures`` and
    the decision stands. Nothing of the failed line is left in the file.
    """


class DecisionUnavailableError(ZeroTrustError, ConnectionError):
    """No decision could be had: a remote PDP did not answer, timed out or failed.

    Raised by a :class:`~zerotrust.DecisionPoint` that asks elsewhere (the AuthZEN
    client's ``PDPUnavailableError`` is one); the web integrations answer it with a
    ``503`` and ``Retry-After``, and never run the view.
    """


class ReportError(ZeroTrustError, ValueError):
    """A :class:`~zerotrust.report.ReportOptions` field is out of its range or of the
    wrong type; the message names the field and what it must be.

    Raised when the options are constructed, before any log is read. A log line that
    is not a decision record never raises: the report counts and names it.
    """
