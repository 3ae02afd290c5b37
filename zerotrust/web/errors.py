"""What the enforcement layer raises; every class is a :class:`~zerotrust.errors.ZeroTrustError`."""

from __future__ import annotations

from zerotrust.decision import Decision
from zerotrust.errors import ZeroTrustError

__all__ = [
    "AccessDenied",
    "NoDecisionError",
    "ObligationError",
    "StepUpRequired",
    "UnsupportedScopeError",
    "WebConfigError",
]


class AccessDenied(ZeroTrustError, PermissionError):
    """Raised by :func:`~zerotrust.web.require` when the decision is not allow.

    ``decision`` is the PDP's answer (its id is what to quote to an operator). Also
    raised for an allow whose obligations cannot be carried out: that fails closed.
    """

    def __init__(self, decision: Decision, message: str | None = None) -> None:
        self.decision = decision
        super().__init__(message or f"access denied (decision {decision.decision_id})")


class StepUpRequired(AccessDenied):
    """The decision is step_up: the caller must authenticate again, more strongly.

    A subclass of :class:`AccessDenied`, so code that only catches denials still
    refuses. ``decision.step_up`` holds the required ``acr_values`` and ``max_age``.
    """

    def __init__(self, decision: Decision) -> None:
        super().__init__(
            decision, f"stronger authentication required (decision {decision.decision_id})"
        )


class ObligationError(ZeroTrustError, ValueError):
    """An obligation this enforcement point cannot carry out: unknown type, bad
    parameters, or no tokenizer configured. Callers must then refuse (fail closed)."""


class WebConfigError(ZeroTrustError, ValueError):
    """Middleware, route table or tokenizer configured inconsistently; raised at construction."""


class NoDecisionError(ZeroTrustError, LookupError):
    """Asked for the decision of a request that no zerotrust middleware has decided."""


class UnsupportedScopeError(ZeroTrustError, ValueError):
    """The ASGI middleware was called with a scope type it cannot decide.

    Only ``http`` and ``websocket`` are decided and only ``lifespan`` passes through;
    for anything else there is no response to send, so the middleware raises this
    (as the ASGI spec asks of an app that meets a scope type it does not understand)
    and never calls the application.
    """
