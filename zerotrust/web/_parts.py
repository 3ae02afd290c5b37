"""What a ``properties=`` / ``context=`` function needs from the route, read once.

Package-internal. A function whose parameters the route does not give would fail on
every request with Python's own ``TypeError``; knowing its required names when it is
declared lets an integration say which route and which name instead (at ``install``
where the router can be read, else on the request).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from typing import Any

from zerotrust.web.errors import WebConfigError

__all__ = ["is_async", "missing_arguments", "required_arguments"]


def required_arguments(part: object, what: str) -> frozenset[str]:
    """The names ``part`` must be called with (none for a mapping or ``None``)."""
    if part is None or not callable(part):
        return frozenset()
    try:
        parameters = inspect.signature(part).parameters.values()
    except (TypeError, ValueError) as exc:  # a builtin or extension type
        raise WebConfigError(f"{what}= has no signature to call it with") from exc
    if any(p.kind is inspect.Parameter.POSITIONAL_ONLY for p in parameters):
        raise WebConfigError(f"{what}= is called with keyword arguments: no positional-only ones")
    return frozenset(
        p.name
        for p in parameters
        if p.default is inspect.Parameter.empty
        and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    )


def missing_arguments(
    needs: Iterable[tuple[str, frozenset[str]]], given: Iterable[str], route: str
) -> None:
    """Raise :class:`WebConfigError` naming a part's argument that ``route`` does not give."""
    available = set(given)
    for what, names in needs:
        if missing := sorted(names - available):
            raise WebConfigError(
                f"route {route}: {what}= takes {', '.join(map(repr, missing))}, which the route "
                f"does not give (it gives {sorted(available) or 'nothing'}): name the "
                "function's parameters after the route's"
            )


def is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` only makes a coroutine (an ``async def``, or an object
    whose ``__call__`` is one)."""
    if inspect.iscoroutinefunction(fn):
        return True
    return inspect.iscoroutinefunction(type(fn).__call__)
