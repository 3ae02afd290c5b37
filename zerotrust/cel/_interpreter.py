"""CEL evaluated by cel-python's tree-walking ``Evaluator``.

Correct and complete, but slow (hundreds of microseconds per condition): it stays
as the reference the compiled backend is checked against. Each evaluation builds
its own ``Evaluator`` and activation, so it is safe to share across threads.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Mapping
from typing import Any

import celpy.evaluation
from celpy import celtypes
from celpy.adapter import json_to_cel

from zerotrust.cel._backend import CelCompileError, ConditionError
from zerotrust.cel._syntax import Parsed, parse
from zerotrust.cel.functions import EXTRA_FUNCTIONS

__all__ = ["InterpreterBackend"]


def _wrap(fn: Callable[..., bool], arity: int, name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if len(args) != arity:
            return celpy.evaluation.CELEvalError(
                f"{name}() takes {arity} argument(s), got {len(args)}", TypeError, ()
            )
        try:
            return celtypes.BoolType(fn(*args))
        except ValueError as exc:
            return celpy.evaluation.CELEvalError(f"{name}(): {exc}", ValueError, ())

    call.__name__ = name
    return call


def _to_cel(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return celtypes.TimestampType(value)
    return json_to_cel(value)


class _InterpretedCondition:
    __slots__ = ("_functions", "_parsed")

    def __init__(self, parsed: Parsed, functions: Mapping[str, Callable[..., Any]]) -> None:
        self._parsed = parsed
        self._functions = functions

    @property
    def source(self) -> str:
        return self._parsed.source

    @property
    def variables(self) -> frozenset[str]:
        return self._parsed.variables

    def __call__(self, bindings: Any) -> bool:
        activation = celpy.evaluation.Activation(functions=self._functions, vars=bindings)
        evaluator = celpy.evaluation.Evaluator(ast=self._parsed.tree, activation=activation)
        try:
            value = evaluator.evaluate()
        except celpy.evaluation.CELEvalError as exc:
            raise ConditionError(_message(exc)) from None
        except RecursionError:
            raise ConditionError("expression nested too deeply to evaluate") from None
        except Exception as exc:  # cel-python raises assorted builtins on odd input
            raise ConditionError(f"{type(exc).__name__}: {exc}") from None
        if isinstance(value, celpy.evaluation.CELEvalError):
            raise ConditionError(_message(value))
        if not isinstance(value, bool | celtypes.BoolType):
            raise ConditionError(f"condition gave {_type_name(value)}, not a boolean")
        return bool(value)


def _message(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    return type(value).__name__.removesuffix("Type").lower()


class InterpreterBackend:
    """The cel-python reference backend."""

    name = "cel-python"

    def __init__(self) -> None:
        self._functions: Mapping[str, Callable[..., Any]] = {
            name: _wrap(fn, arity, name) for name, (fn, arity) in EXTRA_FUNCTIONS.items()
        }
        self._known = frozenset(celpy.evaluation.base_functions) | frozenset(self._functions)

    def compile(self, source: str) -> _InterpretedCondition:
        parsed = parse(source, self._known)
        if not parsed.tree:
            raise CelCompileError("empty condition")
        return _InterpretedCondition(parsed, self._functions)

    def bind(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        return {name: _to_cel(value) for name, value in variables.items()}

    def extend(self, bindings: Any, variables: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(bindings)
        out.update((name, _to_cel(value)) for name, value in variables.items())
        return out
