"""The backend interface and its errors."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from zerotrust.cel.functions import SetFunction
from zerotrust.errors import ZeroTrustError

__all__ = [
    "VARIABLES",
    "Backend",
    "CelCompileError",
    "Condition",
    "ConditionError",
]

#: Every top-level name a condition may read.
VARIABLES = frozenset(
    {"subject", "action", "resource", "device", "context", "data", "risk", "behavior", "now"}
)


class CelCompileError(ZeroTrustError, ValueError):
    """A CEL expression cannot be used; ``line``/``column`` are 1-based within the source."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        self.message = message
        self.line = line
        self.column = column
        super().__init__(f"{line}:{column}: {message}")


class ConditionError(ZeroTrustError, ValueError):
    """A condition failed while evaluating (missing key, type mismatch, non-boolean result).

    The engine never lets this escape ``evaluate``: it records it and fails closed.
    """


class Condition(Protocol):
    """A compiled boolean condition."""

    @property
    def source(self) -> str: ...

    @property
    def variables(self) -> frozenset[str]:
        """The top-level variables the expression reads."""
        ...

    def __call__(self, bindings: Any) -> bool:
        """Evaluate; raise :class:`ConditionError` on any evaluation error."""
        ...


class Backend(Protocol):
    """Compiles CEL at load time and binds request values per decision."""

    name: str

    def compile(
        self, source: str, *, functions: Mapping[str, SetFunction] | None = None
    ) -> Condition:
        """Parse, check and compile ``source``; raise :class:`CelCompileError`.
        ``functions`` are the policy set's own (``in_group``), passed only when it has any."""
        ...

    def bind(self, variables: Mapping[str, Any]) -> Any:
        """Prepare plain JSON values (and ``now``, a datetime) for this backend's conditions."""
        ...

    def extend(self, bindings: Any, variables: Mapping[str, Any]) -> Any:
        """Bindings plus a few more variables, without re-binding the rest."""
        ...
