"""The policy enforcement point for web apps and plain functions.

Framework adapters live in submodules so that importing this package needs no web
framework: ``zerotrust.web.asgi`` (Starlette, FastAPI) and ``zerotrust.web.wsgi``
(Flask, Django). Shared here: configuration, route tables, challenges, obligations
and the :func:`require` decorator.
"""

from __future__ import annotations

from zerotrust.web.challenges import (
    Challenge,
    bearer_challenge,
    parse_challenges,
    problem_body,
    step_up_challenge,
)
from zerotrust.web.decorator import current_request, require
from zerotrust.web.errors import (
    AccessDenied,
    NoDecisionError,
    ObligationError,
    StepUpRequired,
    UnsupportedScopeError,
    WebConfigError,
)
from zerotrust.web.http import HttpRequest, RouteTable, Target, WebConfig, client_ip
from zerotrust.web.obligations import (
    SUPPORTED_OBLIGATIONS,
    ObligationPlan,
    Tokenizer,
    apply_obligations,
)

__all__ = [
    "SUPPORTED_OBLIGATIONS",
    "AccessDenied",
    "Challenge",
    "HttpRequest",
    "NoDecisionError",
    "ObligationError",
    "ObligationPlan",
    "RouteTable",
    "StepUpRequired",
    "Target",
    "Tokenizer",
    "UnsupportedScopeError",
    "WebConfig",
    "WebConfigError",
    "apply_obligations",
    "bearer_challenge",
    "client_ip",
    "current_request",
    "parse_challenges",
    "problem_body",
    "require",
    "step_up_challenge",
]
