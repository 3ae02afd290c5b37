"""CEL evaluated by cel-python's tree-walking ``Evaluator``.

Correct and complete, but slow (hundreds of microseconds per condition): it stays
as the reference the compiled backend is checked against. Each evaluation builds
its own ``Evaluator`` and activation, so it is safe to share across threads.

Where cel-python departs from the CEL specification in a way that decides access,
this module puts the spec back, sharing the compiled backend's runtime so the two
cannot drift apart:

* literals are decoded by the same decoder (``\\X41``, range checks), and literal
  arguments (regexes, time zones, timestamps) are checked at load the same way;
* the macros' predicates must be booleans: ``filter``/``exists_one``/``map`` with a
  non-boolean predicate is an error, never Python truthiness (cel-python keeps ``""``
  out of a ``filter`` and counts ``1`` in an ``exists_one``);
* ``<``, ``<=``, ``>``, ``>=`` order numbers of different types as doubles, so every
  comparison with NaN is false; arithmetic on numbers is the runtime's (``0.0 / 0.0``
  is NaN, not cel-python's infinity; int64/uint64 overflow is an error);
* ``timestamp()``, ``duration()`` and the accessors parse strings and time zones with
  the runtime's strict parsers (cel-python reads any format pendulum guesses at).
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import celpy.evaluation
import lark
from celpy import celtypes
from celpy.adapter import json_to_cel

from zerotrust.cel import _compiler_runtime as rt
from zerotrust.cel._backend import VARIABLES, CelCompileError, ConditionError
from zerotrust.cel._codegen_base import CelLiteralError, literal_value
from zerotrust.cel._compiler_codegen import generate
from zerotrust.cel._syntax import Parsed, parse
from zerotrust.cel.functions import EXTRA_FUNCTIONS

__all__ = ["InterpreterBackend"]

_EvalError = celpy.evaluation.CELEvalError
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_LITERALS = frozenset({"INT_LIT", "UINT_LIT", "FLOAT_LIT", "STRING_LIT", "BYTES_LIT"})


def _error(message: str) -> Any:
    return _EvalError(message, ValueError, ())


def _wrap(fn: Callable[..., bool], arity: int, name: str) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        if len(args) != arity:
            return _error(f"{name}() takes {arity} argument(s), got {len(args)}")
        try:
            return celtypes.BoolType(fn(*args))
        except ValueError as exc:
            return _error(f"{name}(): {exc}")

    call.__name__ = name
    return call


def _to_cel(value: Any) -> Any:
    if isinstance(value, datetime.datetime):
        return celtypes.TimestampType(value)
    return json_to_cel(value)


def _plain(value: Any) -> Any:
    """A cel-python value as the compiled runtime's plain value (numbers, strings)."""
    if isinstance(value, celtypes.BoolType):
        return bool(value)
    if isinstance(value, celtypes.UintType):
        return rt.CelUint(int(value))
    if isinstance(value, celtypes.IntType):
        return int(value)
    if isinstance(value, celtypes.DoubleType):
        return float(value)
    if isinstance(value, celtypes.StringType):
        return str(value)
    return value


def _cel(value: Any) -> Any:
    """A compiled-runtime value as cel-python's."""
    if isinstance(value, bool):
        return celtypes.BoolType(value)
    if isinstance(value, rt.CelUint):
        return celtypes.UintType(int(value))
    if isinstance(value, int):
        return celtypes.IntType(value)
    if isinstance(value, float):
        return celtypes.DoubleType(value)
    if isinstance(value, str):
        return celtypes.StringType(value)
    if isinstance(value, bytes):
        return celtypes.BytesType(value)
    if isinstance(value, datetime.datetime):
        return celtypes.TimestampType(value)
    if isinstance(value, datetime.timedelta):
        return celtypes.DurationType(value)
    return value


def _runtime(fn: Callable[..., Any], fallback: Callable[..., Any] | None = None) -> Any:
    """``fn`` from the compiled runtime as a cel-python function: errors become values.

    With ``fallback``, arguments that are not all numbers go to cel-python's own
    function (used for the operators, which cel-python does right on other kinds).
    """

    def call(*args: Any) -> Any:
        if fallback is not None and not all(
            isinstance(a, celtypes.IntType | celtypes.UintType | celtypes.DoubleType)
            and not isinstance(a, celtypes.BoolType)
            for a in args
        ):
            return fallback(*args)
        try:
            return _cel(fn(*(_plain(a) for a in args)))
        except (rt.CelError, ValueError, TypeError, OverflowError) as exc:
            return _error(str(exc))

    call.__name__ = getattr(fn, "__name__", "function")
    return call


def _functions() -> dict[str, Callable[..., Any]]:
    base = celpy.evaluation.base_functions
    out: dict[str, Callable[..., Any]] = {
        name: _wrap(fn, arity, name) for name, (fn, arity) in EXTRA_FUNCTIONS.items()
    }
    numeric = (
        ("_<_", rt.lt),
        ("_<=_", rt.le),
        ("_>_", rt.gt),
        ("_>=_", rt.ge),
        ("_+_", rt.add),
        ("_-_", rt.sub),
        ("_*_", rt.mul),
        ("_/_", rt.div),
        ("_%_", rt.mod),
        ("-_", rt.neg),
    )
    for op, fn in numeric:
        out[op] = _runtime(fn, base[op])
    out["timestamp"] = _runtime(rt.to_timestamp)
    out["duration"] = _runtime(rt.to_duration)
    out.update((name, _runtime(fn)) for name, fn in rt.ACCESSORS.items())
    # The network extension: ``ip`` is both ``ip(string)`` and ``cidr.ip()`` (to_ip takes
    # either); ``ip.isCanonical`` and ``net.IP`` are qualified names cel-python cannot
    # resolve, so they stay unknown here (a load-time error).
    for table in (rt.NETWORK_METHODS, rt.NETWORK_FUNCTIONS):
        out.update((name, _runtime(fn)) for name, (fn, _) in table.items())
    return out


class _Evaluator(celpy.evaluation.Evaluator):
    """cel-python's evaluator with the spec's literals and macros (see the module doc)."""

    def sub_evaluator(self, ast: lark.Tree[Any]) -> _Evaluator:
        return _Evaluator(ast, activation=self.activation)

    def literal(self, tree: lark.Tree[Any]) -> Any:
        token = tree.children[0]
        if not isinstance(token, lark.Token) or token.type not in _LITERALS:
            return super().literal(tree)
        try:
            return _cel(literal_value(token))
        except CelCompileError as exc:  # checked at load: only a tree built elsewhere
            return _error(exc.message)

    def member_dot_arg(self, tree: lark.Tree[Any]) -> Any:
        name = str(tree.children[1])
        if name not in _MACROS:
            return super().member_dot_arg(tree)
        target = self.visit(tree.children[0])
        if isinstance(target, _EvalError):
            return target
        if not isinstance(target, celtypes.ListType | celtypes.MapType):
            return _error(f"macros range over lists and maps, not {type(target).__name__}")
        args = tree.children[2].children
        var = str(next(args[0].find_data("ident")).children[0])
        if name in ("all", "exists"):
            return self._quantifier(target, var, args[1], absorbing=name == "exists")
        results: list[Any] = []
        count = 0
        for item in target:
            keep = self._predicate(item, var, args[1]) if name != "map" or len(args) == 3 else True
            if isinstance(keep, _EvalError):
                return keep
            if name == "exists_one":
                count += keep
            elif keep:
                mapped = item if name == "filter" else self._value(item, var, args[-1])
                if isinstance(mapped, _EvalError):
                    return mapped
                results.append(mapped)
        if name == "exists_one":
            return celtypes.BoolType(count == 1)
        return celtypes.ListType(results)

    def _value(self, item: Any, var: str, expr: lark.Tree[Any]) -> Any:
        try:
            return self.sub_evaluator(expr).evaluate({var: item})
        except _EvalError as exc:
            return exc

    def _predicate(self, item: Any, var: str, expr: lark.Tree[Any]) -> Any:
        """The predicate's bool for ``item``, or an error (also for a non-boolean)."""
        value = self._value(item, var, expr)
        if isinstance(value, _EvalError | celtypes.BoolType | bool):
            return value if isinstance(value, _EvalError) else bool(value)
        return _error(f"no such overload: predicate gave {_type_name(value)}, not a boolean")

    def _quantifier(self, items: Any, var: str, expr: lark.Tree[Any], *, absorbing: bool) -> Any:
        """``all`` (``false`` absorbs) and ``exists`` (``true`` absorbs); else the first error."""
        error = None
        for item in items:
            value = self._predicate(item, var, expr)
            if value is absorbing:
                return celtypes.BoolType(absorbing)
            if error is None and isinstance(value, _EvalError):
                error = value
        return error if error is not None else celtypes.BoolType(not absorbing)


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
        evaluator = _Evaluator(ast=self._parsed.tree, activation=activation)
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


def _literal_tokens(tree: lark.Tree[Any]) -> Iterator[lark.Token]:
    for node in tree.iter_subtrees():
        if node.data == "literal":
            token = node.children[0]
            if isinstance(token, lark.Token) and token.type in _LITERALS:
                yield token


def _check_literals(parsed: Parsed) -> None:
    """The load-time literal checks of the compiled backend, so both refuse the same.

    Every literal must decode; literal arguments (regex, time zone, timestamp,
    duration) must be valid. Other refusals of the code generator (a cel-python
    extension it does not compile) are not this backend's business.
    """
    for token in _literal_tokens(parsed.tree):
        literal_value(token)
    try:
        generate(parsed.tree, VARIABLES, EXTRA_FUNCTIONS)
    except CelLiteralError:
        raise
    except (CelCompileError, RecursionError):
        pass


class InterpreterBackend:
    """The cel-python reference backend."""

    name = "cel-python"

    def __init__(self) -> None:
        self._functions: Mapping[str, Callable[..., Any]] = _functions()
        self._known = frozenset(celpy.evaluation.base_functions) | frozenset(self._functions)

    def compile(self, source: str) -> _InterpretedCondition:
        """Parse and check ``source``; raises :class:`CelCompileError` and nothing else."""
        try:
            parsed = parse(source, self._known)
            _check_literals(parsed)
        except CelCompileError:
            raise
        except Exception as exc:  # as CompiledBackend.compile: a bug, still a diagnostic
            raise CelCompileError("condition could not be compiled") from exc
        return _InterpretedCondition(parsed, self._functions)

    def bind(self, variables: Mapping[str, Any]) -> dict[str, Any]:
        return {name: _to_cel(value) for name, value in variables.items()}

    def extend(self, bindings: Any, variables: Mapping[str, Any]) -> dict[str, Any]:
        out = dict(bindings)
        out.update((name, _to_cel(value)) for name, value in variables.items())
        return out
