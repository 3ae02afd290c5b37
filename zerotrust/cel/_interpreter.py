"""CEL evaluated by walking the syntax tree with cel-python's ``Evaluator``.

The reference the compiled backend is checked against: the same parse tree evaluated a
second, independent way (a tree walk rather than generated code), and slow (hundreds of
microseconds per condition). Each evaluation builds its own ``Evaluator`` and
activation, so it is safe to share across threads.

What each operation *means* is the compiled backend's runtime, never cel-python's own
library: cel-python departs from the CEL specification in ways that decide access
(``int(" 3")``, ``int("0x10")`` and fullwidth digits convert, ``true == 1``, ``size(null)`` is
0, ``"a" in "abc"`` and ``list[-1]`` work, ``has()`` of a field of a number is false,
``string(true)`` is ``"True"``), so two backends over two libraries answered differently on
the same request. Here cel-python only walks the tree, resolves names and carries errors
as values; values are the runtime's plain ones (as ``bind`` receives them), and every
literal, operator, function, method, conversion, ``has()``, field selection, map literal,
macro and qualified name (``net.IP``, ``ip.isCanonical``) goes through
:mod:`._compiler_runtime`. A condition is accepted at load exactly when the compiled
backend accepts it: the same parser, name checks and code generator's checks.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import celpy.evaluation
import lark

from zerotrust.cel import _compiler_runtime as rt
from zerotrust.cel._backend import VARIABLES, CelCompileError, ConditionError
from zerotrust.cel._codegen_base import literal_value
from zerotrust.cel._compiler import FUNCTIONS, _error_message
from zerotrust.cel._compiler_codegen import generate
from zerotrust.cel._syntax import TOO_DEEP, Parsed, _ident, parse, unwrap
from zerotrust.cel.functions import EXTRA_FUNCTIONS, SetFunction, function_tables

__all__ = ["InterpreterBackend"]

_EvalError = celpy.evaluation.CELEvalError
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})


def _error(message: str) -> Any:
    return _EvalError(message, ValueError, ())


def _strict(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` as a strict CEL operation: an error argument is the result, and anything
    ``fn`` raises is an evaluation error (as in the generated code)."""

    @functools.wraps(fn)
    def call(*args: Any) -> Any:
        for arg in args:
            if isinstance(arg, _EvalError):
                return arg
        try:
            return fn(*args)
        except Exception as exc:
            return _error(_error_message(exc))

    return call


def _not_bool(value: Any) -> Any:
    return value if isinstance(value, _EvalError) else _error(str(rt.not_bool(value)))


def _logic(absorbing: bool) -> Callable[[Any, Any], Any]:
    """CEL ``||`` (``true`` absorbs) or ``&&`` (``false`` absorbs): an absorbing operand wins
    over an error or a non-boolean in either position; else the first of those is the
    result."""

    def call(a: Any, b: Any) -> Any:
        if a is absorbing or b is absorbing:
            return absorbing
        for operand in (a, b):
            if operand is not (not absorbing):
                return _not_bool(operand)
        return not absorbing

    return call


def _conditional(condition: Any, then: Any, otherwise: Any) -> Any:
    """``c ? a : b``: cel-python evaluated only the branch that ``c`` selects."""
    if condition is True:
        return then
    if condition is False:
        return otherwise
    return _not_bool(condition)


#: The operators cel-python's evaluator looks up by name, all the runtime's.
_OPERATORS: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "_==_": _strict(rt.eq),
        "_!=_": _strict(rt.ne),
        "_<_": _strict(rt.lt),
        "_<=_": _strict(rt.le),
        "_>_": _strict(rt.gt),
        "_>=_": _strict(rt.ge),
        "_in_": _strict(rt.contained),
        "_+_": _strict(rt.add),
        "_-_": _strict(rt.sub),
        "_*_": _strict(rt.mul),
        "_/_": _strict(rt.div),
        "_%_": _strict(rt.mod),
        "-_": _strict(rt.neg),
        "!_": _strict(rt.not_),
        "_[_]": _strict(rt.index),
        "_&&_": _logic(False),
        "_||_": _logic(True),
        "_?_:_": _conditional,
    }
)


def _extras(functions: Mapping[str, SetFunction]) -> dict[str, Callable[..., Any]]:
    return {name: functools.partial(rt.call_extra, f.fn, name) for name, f in functions.items()}


def _table(*parts: Mapping[str, Callable[..., Any]]) -> Mapping[str, Callable[..., Any]]:
    merged: dict[str, Callable[..., Any]] = {}
    for part in parts:
        merged.update(part)
    return MappingProxyType({name: _strict(fn) for name, fn in merged.items()})


_EITHER_FORM: Mapping[str, Callable[..., Any]] = MappingProxyType(
    {
        "size": rt.size,
        "contains": rt.contains,
        "startsWith": rt.starts_with,
        "endsWith": rt.ends_with,
        "matches": rt.matches,
    }
)
#: Calls ``f(x, ...)``: the code generator's ``_call(method=False)`` table.
_FUNCTIONS = _table(
    _EITHER_FORM,
    rt.CONVERSIONS,
    {name: fn for name, (fn, _) in rt.NETWORK_FUNCTIONS.items()},
    _extras({name: SetFunction(fn, arity) for name, (fn, arity) in EXTRA_FUNCTIONS.items()}),
)
#: Calls ``x.f(...)``: the code generator's ``_call(method=True)`` table.
_METHODS = _table(
    _EITHER_FORM,
    rt.ACCESSORS,
    {name: fn for name, (fn, _) in rt.NETWORK_METHODS.items()},
)


class _Evaluator(celpy.evaluation.Evaluator):
    """cel-python's tree walk, with every operation the runtime's (see the module doc)."""

    #: The ``f(x)`` table: :data:`_FUNCTIONS`, plus the policy set's own when it has any.
    functions: Mapping[str, Callable[..., Any]] = _FUNCTIONS

    def sub_evaluator(self, ast: lark.Tree[Any]) -> _Evaluator:
        sub = _Evaluator(ast, activation=self.activation)
        sub.functions = self.functions
        return sub

    # --- values -------------------------------------------------------------------------

    def literal(self, tree: lark.Tree[Any]) -> Any:
        try:
            return literal_value(tree.children[0])  # type: ignore[arg-type]
        except CelCompileError as exc:  # checked at load: only a tree built elsewhere
            return _error(exc.message)

    def exprlist(self, tree: lark.Tree[Any]) -> Any:
        values = self.visit_children(tree)
        for value in values:
            if isinstance(value, _EvalError):
                return value
        return values

    def primary(self, tree: lark.Tree[Any]) -> Any:
        child = tree.children[0]
        if isinstance(child, lark.Tree) and child.data == "list_lit":
            return self.visit(child.children[0]) if child.children else []
        if isinstance(child, lark.Tree) and child.data == "map_lit":
            if not child.children:
                return {}
            values = self.visit_children(child.children[0])
            for value in values:
                if isinstance(value, _EvalError):
                    return value
            return _strict(rt.make_map)(list(zip(values[0::2], values[1::2], strict=True)))
        return super().primary(tree)

    def ident_value(self, name: str, root_scope: bool = False) -> Any:
        try:
            value = super().ident_value(name, root_scope)
        except KeyError:  # cel-python's own message prints every binding, values and all
            return _error(f"no such variable: {name!r}")
        if name in rt.TYPE_IDENTS and callable(value):  # not a variable: the type
            return rt.TYPE_IDENTS[name]
        return value

    # --- selection and calls ------------------------------------------------------------

    def _qualified(self, target: Any, name: Any, table: Mapping[str, Any]) -> Any:
        """``table[q.name]`` when ``target`` is a bare name ``q`` that is no variable
        (``net.IP``, ``ip.isCanonical``), else None: the code generator's ``_qualifier``."""
        qualifier = _ident(target)
        if qualifier is None or f"{qualifier}.{name}" not in table:
            return None
        try:
            self.activation.identifiers.resolve_name(self.activation.package, qualifier)
        except KeyError:
            return table[f"{qualifier}.{name}"]
        return None

    def member_dot(self, tree: lark.Tree[Any]) -> Any:
        qualified = self._qualified(tree.children[0], tree.children[1], rt.QUALIFIED_TYPES)
        if qualified is not None:
            return qualified
        target = self.visit(tree.children[0])
        if isinstance(target, celpy.evaluation.NameContainer):
            return super().member_dot(tree)
        return _strict(rt.select)(target, str(tree.children[1]))

    def macro_has_eval(self, exprlist: lark.Tree[Any]) -> Any:
        """``has(a.f)``: presence of a key in a map, an error on anything else."""
        args = exprlist.children
        node = unwrap(args[0]) if len(args) == 1 and isinstance(args[0], lark.Tree) else None
        if node is None or node.data != "member_dot":  # refused at load
            return _error("has() takes a field selection, like has(resource.owner)")
        target = self.visit(node.children[0])
        return _strict(rt.has)(target, str(node.children[1]))

    def function_eval(self, name_token: lark.Token, exprlist: Any = None) -> Any:
        return self._call(self.functions, str(name_token), [], exprlist)

    def method_eval(self, object: Any, method_ident: lark.Token, exprlist: Any = None) -> Any:
        return self._call(_METHODS, str(method_ident), [object], exprlist)

    @staticmethod
    def _call(
        table: Mapping[str, Callable[..., Any]], name: str, head: list[Any], args: Any
    ) -> Any:
        fn = table.get(name)
        if fn is None:  # refused at load
            return _error(f"unsupported function {name}()")
        if isinstance(args, _EvalError):
            return args
        return fn(*head, *(args or ()))

    # --- macros -------------------------------------------------------------------------

    def member_dot_arg(self, tree: lark.Tree[Any]) -> Any:
        name = str(tree.children[1])
        if name not in _MACROS:
            qualified = self._qualified(tree.children[0], name, rt.QUALIFIED_FUNCTIONS)
            if qualified is None:
                return super().member_dot_arg(tree)
            args = self.visit(tree.children[2]) if len(tree.children) > 2 else []
            return args if isinstance(args, _EvalError) else _strict(qualified[0])(*args)
        target = self.visit(tree.children[0])
        items = _strict(rt.iterate)(target)
        if isinstance(items, _EvalError):
            return items
        args = tree.children[2].children
        var = _ident(args[0])
        if var is None:  # refused at load
            return _error(f"{name}() takes a variable name and an expression")
        if name in ("all", "exists"):
            return self._quantifier(items, var, args[1], absorbing=name == "exists")
        results: list[Any] = []
        count = 0
        for item in items:
            keep = True
            if name != "map" or len(args) == 3:
                keep = self._predicate(item, var, args[1])
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
            return count == 1
        return results

    def _value(self, item: Any, var: str, expr: lark.Tree[Any]) -> Any:
        try:
            return self.sub_evaluator(expr).evaluate({var: item})
        except _EvalError as exc:
            return exc

    def _predicate(self, item: Any, var: str, expr: lark.Tree[Any]) -> Any:
        """The predicate's bool for ``item``, or an error (also for a non-boolean)."""
        value = self._value(item, var, expr)
        return value if value is True or value is False else _not_bool(value)

    def _quantifier(self, items: Any, var: str, expr: lark.Tree[Any], *, absorbing: bool) -> Any:
        """``all`` (``false`` absorbs) and ``exists`` (``true`` absorbs); else the first error."""
        error = None
        for item in items:
            value = self._predicate(item, var, expr)
            if value is absorbing:
                return absorbing
            if error is None and isinstance(value, _EvalError):
                error = value
        return error if error is not None else not absorbing


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
        activation = celpy.evaluation.Activation(functions=_OPERATORS, vars=bindings)
        evaluator = _Evaluator(ast=self._parsed.tree, activation=activation)
        evaluator.functions = self._functions
        try:
            value: Any = evaluator.evaluate()
        except _EvalError as exc:
            raise ConditionError(_message(exc)) from None
        except RecursionError:
            raise ConditionError("expression nested too deeply to evaluate") from None
        except Exception as exc:  # a fault of the walk itself: still fail closed
            raise ConditionError(f"{type(exc).__name__}: {exc}") from None
        if value is True or value is False:
            return value
        if isinstance(value, _EvalError):
            raise ConditionError(_message(value))
        raise ConditionError(f"condition gave {_kind_name(value)}, not a boolean")


def _message(exc: BaseException) -> str:
    if exc.args and isinstance(exc.args[0], str):
        return exc.args[0]
    return str(exc)


def _kind_name(value: Any) -> str:
    try:
        return rt.kind_of(value).name
    except rt.CelError:
        return type(value).__name__


class InterpreterBackend:
    """The tree-walking reference backend (cel-python's evaluator, the runtime's meaning)."""

    name = "cel-python"

    def compile(
        self, source: str, *, functions: Mapping[str, SetFunction] | None = None
    ) -> _InterpretedCondition:
        """Parse and check ``source`` as the compiled backend does; raises
        :class:`CelCompileError` and nothing else. ``functions``: the policy set's own."""
        table = _FUNCTIONS
        try:
            extras, checks = function_tables(functions)
            parsed = parse(source, FUNCTIONS)
            generate(parsed.tree, VARIABLES, extras, checks)  # every load-time check
            if functions:
                table = MappingProxyType({**table, **_table(_extras(functions))})
        except CelCompileError:
            raise
        except RecursionError:
            raise CelCompileError(TOO_DEEP) from None
        except Exception as exc:  # as CompiledBackend.compile: a bug, still a diagnostic
            raise CelCompileError("condition could not be compiled") from exc
        return _InterpretedCondition(parsed, table)

    def bind(self, variables: Mapping[str, Any]) -> Mapping[str, Any]:
        return variables

    def extend(self, bindings: Any, variables: Mapping[str, Any]) -> dict[str, Any]:
        return {**bindings, **variables}
