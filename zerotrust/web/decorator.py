"""``@require``: the enforcement point for plain functions and non-HTTP code paths.

::

    @require(pdp, action="export", resource=lambda dept: {
        "type": "customer_record", "id": dept, "properties": {"owner_dept": dept}})
    def export_customers(dept: str) -> list[dict[str, Any]]: ...

Raises :class:`AccessDenied` or :class:`StepUpRequired` carrying the decision; on allow
the function runs and, by default, its JSON-shaped result has the obligations applied.
A result the obligations cannot be applied to (not JSON-shaped) is withheld: the call
raises :class:`AccessDenied` instead of returning it unmasked.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, ParamSpec, TypeVar, cast

from zerotrust._describe import describe
from zerotrust.decision import Decision, Effect
from zerotrust.engine import DecisionPoint
from zerotrust.errors import RequestError
from zerotrust.request import AccessRequest, plain_mapping, request_variables
from zerotrust.web._pep import CURRENT_REQUEST, HTTP_CONTEXT_KEYS, Part, request_part
from zerotrust.web.errors import (
    AccessDenied,
    NoDecisionError,
    ObligationError,
    StepUpRequired,
    WebConfigError,
)
from zerotrust.web.obligations import ObligationPlan, Tokenizer

__all__ = ["current_request", "require"]

P = ParamSpec("P")
R = TypeVar("R")


def current_request() -> AccessRequest | None:
    """The access request of the HTTP request a zerotrust middleware is handling, if any."""
    return CURRENT_REQUEST.get()


def require(
    pdp: DecisionPoint,
    *,
    action: str,
    resource: Part,
    subject: Part = None,
    device: Part = None,
    context: Part = None,
    tokenizer: Tokenizer | None = None,
    apply_obligations: bool = True,
    handled_obligations: Iterable[str] = (),
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decide before every call; works on sync and async functions.

    ``resource``, ``subject``, ``device`` and ``context`` are mappings or functions
    called with those of the decorated function's arguments whose names they take
    (``lambda customer_id: {...}``).

    Under a request the zerotrust middleware decided, what it verified or read from
    HTTP decides: the subject, the device and the context of that request are used,
    and ``context`` may only add keys. ``subject=``, a ``device`` that gives a value,
    or a ``context`` key the middleware sets (``ip``, ``country``, ``time``,
    ``user_agent``, ``method``, ``path``, ``route``, ``websocket``, ``path_params``,
    whether or not this request gave them a value, and any other key of the request's
    context) raise
    :class:`~zerotrust.errors.RequestError` naming it, before the function runs: an
    argument never chooses the client address or the device posture.

    Outside such a request, ``subject`` is required (else :class:`NoDecisionError`)
    and the parts are the function's own. A ``subject`` function that returns ``None``
    is a request without a subject (a :class:`~zerotrust.errors.RequestError`).

    A sync callable that returns an awaitable (an ``async`` callable object, say) is
    decided when called and has the obligations applied to the awaited result.
    """
    if not action or not isinstance(action, str):
        raise WebConfigError("require: action must be a non-empty string")
    if resource is None:
        raise WebConfigError("require: resource is required")
    handled = frozenset(handled_obligations)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)
        parts = {
            name: request_part(value)
            for name, value in (
                ("resource", resource),
                ("subject", subject),
                ("device", device),
                ("context", context),
            )
        }
        name = getattr(func, "__qualname__", type(func).__qualname__)  # callable objects too
        where = {"function": f"{func.__module__}.{name}"}

        def build(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            values = {name: part(bound.arguments) for name, part in parts.items()}
            request: dict[str, Any] = {"action": {"name": action}, "resource": values["resource"]}
            current = CURRENT_REQUEST.get()
            if current is not None:
                added = _additions(
                    current, subject is not None, values["device"], values["context"]
                )
                # The validated private copy, never the request's public containers: what
                # the middleware decided on is what @require decides on.
                verified = request_variables(current)
                request["subject"] = verified["subject"]
                request["device"] = verified["device"]
                request["context"] = {**added, **verified["context"]}
            elif subject is not None:
                request["subject"] = values["subject"]
                request["device"] = values["device"] or {}
                request["context"] = values["context"] or {}
            else:
                raise NoDecisionError(
                    "require: no subject given and no request authenticated by the middleware"
                )
            return request

        def release(decision: Decision, plan: ObligationPlan, result: Any) -> Any:
            if not apply_obligations:
                return result
            try:
                return plan.apply(result)
            except ObligationError as exc:
                raise AccessDenied(
                    decision, f"result withheld: {exc} (decision {decision.decision_id})"
                ) from exc

        async def release_later(decision: Decision, plan: ObligationPlan, pending: Any) -> Any:
            return release(decision, plan, await pending)

        def enforce(decision: Decision) -> ObligationPlan:
            if decision.effect is Effect.STEP_UP:
                raise StepUpRequired(decision)
            if decision.effect is not Effect.ALLOW:
                raise AccessDenied(decision)
            try:
                return ObligationPlan.compile(
                    decision.obligations, tokenizer=tokenizer, handled=handled
                )
            except ObligationError as exc:
                raise AccessDenied(
                    decision, f"access denied: {exc} (decision {decision.decision_id})"
                ) from exc

        if inspect.iscoroutinefunction(func):
            run_async = cast(Callable[..., Awaitable[Any]], func)

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                decision = await pdp.evaluate_async(build(args, kwargs), extra=where)
                plan = enforce(decision)
                return release(decision, plan, await run_async(*args, **kwargs))

            return cast(Callable[P, R], async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            decision = pdp.evaluate(build(args, kwargs), extra=where)
            plan = enforce(decision)
            result = func(*args, **kwargs)
            if apply_obligations and plan and inspect.isawaitable(result):
                return cast(R, release_later(decision, plan, result))
            return cast(R, release(decision, plan, result))

        return wrapper

    return decorate


def _additions(
    current: AccessRequest, has_subject: bool, device: Any, context: Any
) -> Mapping[str, Any]:
    """The context keys a decorated call may add to the current HTTP request's.

    What the middleware verified or read from the request (the subject, the device,
    ``context.ip``, ``country``, ``path``...) decides; a value from the function's
    arguments that would replace it raises :class:`RequestError` naming it, before the
    function runs, rather than be silently dropped or, worse, believed.
    """
    if has_subject:
        raise RequestError(
            "subject",
            "@require's subject= cannot replace the subject the middleware verified for "
            "this request (decorate without subject= for functions called under it)",
        )
    if device is not None:
        raise RequestError(
            "device", "@require's device= cannot replace the device the middleware verified"
        )
    if context is None:
        return {}
    if not issubclass(type(context), Mapping):
        raise RequestError(
            "context", f"@require's context= gave {describe(context)}, not a mapping"
        )
    added = plain_mapping(context)  # plain str keys: a str subclass cannot dodge the check
    taken = HTTP_CONTEXT_KEYS.union(request_variables(current)["context"])
    for key in added:
        if key in taken:
            raise RequestError(
                f"context.{key}",
                "set by the middleware from the HTTP request; @require's context= cannot "
                "replace it",
            )
    return added
