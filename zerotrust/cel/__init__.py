"""The condition language: CEL, behind one small interface.

The rest of zerotrust sees only :class:`Backend` and :class:`Condition`. A backend
compiles CEL source once at policy load, and per decision turns the request's plain
JSON values into whatever its conditions read (``bind``). This package is the only
place that imports ``celpy``; its process-wide side effects (the recursion limit,
the shared parser) are avoided here, so the host application never notices them.
"""

from __future__ import annotations

from zerotrust.cel._backend import (
    VARIABLES,
    Backend,
    CelCompileError,
    Condition,
    ConditionError,
)
from zerotrust.cel._compiler import CompiledBackend
from zerotrust.cel._interpreter import InterpreterBackend
from zerotrust.cel._reads import PathValue, values_read
from zerotrust.cel._references import NAMESPACE, VariableReference, variable_references
from zerotrust.cel._syntax import MAX_SOURCE_CHARS
from zerotrust.cel.functions import EXTRA_FUNCTIONS, SetFunction

__all__ = [
    "EXTRA_FUNCTIONS",
    "MAX_SOURCE_CHARS",
    "NAMESPACE",
    "VARIABLES",
    "Backend",
    "CelCompileError",
    "CompiledBackend",
    "Condition",
    "ConditionError",
    "InterpreterBackend",
    "PathValue",
    "SetFunction",
    "VariableReference",
    "default_backend",
    "values_read",
    "variable_references",
]


def default_backend() -> Backend:
    """The backend the engine uses when none is given: CEL compiled to Python.

    ``InterpreterBackend`` (cel-python's evaluator) stays available as the slow
    reference the compiler is tested against.
    """
    return CompiledBackend()
