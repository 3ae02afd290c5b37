"""What is left of a condition once everything but the resource is known: the residual.

A residual is a small tree over ``resource.id`` and ``resource.properties.*`` whose leaves
are values computed at plan time. It keeps CEL's meaning exactly, errors included: a row
for which a residual errors is a row for which the original condition errors. Three
readers share it: :func:`evaluate` (one row, in Python, with the CEL runtime's own
operators), :func:`to_cel` (the text ``zerotrust plan`` prints) and the database adapters,
which translate each node through its *true* and *false* sets (see
:mod:`zerotrust.plan.sqlalchemy`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from zerotrust.cel import _runtime_ops as ops
from zerotrust.cel import _runtime_values as rt
from zerotrust.cel._runtime_values import CelError

__all__ = [
    "STRING_CALLS",
    "And",
    "Call",
    "Compare",
    "Error",
    "Field",
    "Fires",
    "Has",
    "In",
    "Node",
    "Not",
    "Opaque",
    "Or",
    "Value",
    "evaluate",
    "expressible",
    "fields",
    "holds",
    "to_cel",
    "to_json",
]

#: The methods of strings a residual keeps (``size`` is also a function).
STRING_CALLS = ("startsWith", "endsWith", "contains", "size")
COMPARISONS = ("==", "!=", "<", "<=", ">", ">=")


class Node:
    """A residual node; every node type is a frozen attrs class below."""

    __slots__ = ()


@attrs.frozen
class Value(Node):
    """A value known at plan time (plain JSON data, or a CEL value such as a timestamp)."""

    value: Any


@attrs.frozen
class Error(Node):
    """An evaluation error known at plan time (a missing subject attribute, say)."""

    message: str


@attrs.frozen
class Field(Node):
    """``resource.id`` (``("id",)``) or ``resource.properties.a.b`` (``("properties",
    "a", "b")``): the row's value, an error where it is missing."""

    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return _path_text(self.path)


@attrs.frozen
class Has(Node):
    """``has(resource.properties.a)``: whether the row has the attribute."""

    path: tuple[str, ...]

    @property
    def name(self) -> str:
        return _path_text(self.path)


@attrs.frozen
class Compare(Node):
    """``left op right``, ``op`` one of ``== != < <= > >=``."""

    op: str
    left: Node
    right: Node


@attrs.frozen
class In(Node):
    """``item in container`` (a known list, or a row's value)."""

    item: Node
    container: Node


@attrs.frozen
class Call(Node):
    """``target.name(args...)`` for :data:`STRING_CALLS` (``size(x)`` is ``x.size()``)."""

    name: str
    target: Node
    args: tuple[Node, ...] = ()


@attrs.frozen
class And(Node):
    left: Node
    right: Node


@attrs.frozen
class Or(Node):
    left: Node
    right: Node


@attrs.frozen
class Not(Node):
    operand: Node


@attrs.frozen
class Fires(Node):
    """True unless ``operand`` is false: a risk signal fires when its condition holds or
    errors (fail closed), so ``Fires`` is never an error."""

    operand: Node


@attrs.frozen
class Opaque(Node):
    """A sub-expression about the resource outside the plan language (arithmetic, a
    macro, a function other than :data:`STRING_CALLS`): the plan cannot be a filter."""

    source: str


_ATOMIC_BOOL = (Compare, In, Has, Fires, And, Or, Not)


def is_boolean(node: Node) -> bool:
    """Whether ``node`` gives a bool or an error on every row (never another value)."""
    if isinstance(node, _ATOMIC_BOOL):
        return True
    if isinstance(node, Value):
        return type(node.value) is bool
    if isinstance(node, Error):
        return True
    return isinstance(node, Call) and node.name != "size"


# --- building, with CEL's own simplifications ------------------------------------------


def and_(left: Node, right: Node) -> Node:
    """``left && right``: false wins over an error on either side (CEL's commutative
    ``&&``), true is dropped only beside a node that is boolean on every row."""
    if _is(left, False) or _is(right, False):
        return Value(False)
    if _is(left, True) and is_boolean(right):
        return right
    if _is(right, True) and is_boolean(left):
        return left
    if isinstance(left, Error) and isinstance(right, Error):
        return left
    return And(left, right)


def or_(left: Node, right: Node) -> Node:
    if _is(left, True) or _is(right, True):
        return Value(True)
    if _is(left, False) and is_boolean(right):
        return right
    if _is(right, False) and is_boolean(left):
        return left
    if isinstance(left, Error) and isinstance(right, Error):
        return left
    return Or(left, right)


def not_(operand: Node) -> Node:
    if isinstance(operand, Value):
        if type(operand.value) is bool:
            return Value(not operand.value)
        return Error(f"no such overload: !_({_kind(operand.value)})")
    if isinstance(operand, Error):
        return operand
    if isinstance(operand, Not) and is_boolean(operand.operand):
        return operand.operand
    return Not(operand)


def fires(operand: Node) -> Node:
    if isinstance(operand, Value):
        return Value(operand.value is not False)
    if isinstance(operand, Error):
        return Value(True)
    return Fires(operand)


def never_true(node: Node) -> bool:
    """Whether ``node`` is true on no row whatever the row holds (an error and a false
    ``&&`` beside anything, say): a plan of it allows nothing."""
    if isinstance(node, Value):
        return node.value is not True
    if isinstance(node, Error):
        return True
    if isinstance(node, And):
        return never_true(node.left) or never_true(node.right)
    if isinstance(node, Or):
        return never_true(node.left) and never_true(node.right)
    if isinstance(node, Not):
        return never_false(node.operand)
    return False


def never_false(node: Node) -> bool:
    """Whether ``node`` is false on no row (true or an error on each)."""
    if isinstance(node, Value):
        return node.value is not False
    if isinstance(node, Error):
        return True
    if isinstance(node, And):
        return never_false(node.left) and never_false(node.right)
    if isinstance(node, Or):
        return never_false(node.left) or never_false(node.right)
    if isinstance(node, Not | Fires):
        return never_true(node.operand) if isinstance(node, Not) else never_false(node.operand)
    return False


def any_of(nodes: list[Node]) -> Node:
    made: Node = Value(False)
    for node in nodes:
        made = or_(made, node)
    return made


def all_of(nodes: list[Node]) -> Node:
    made: Node = Value(True)
    for node in nodes:
        made = and_(made, node)
    return made


def _is(node: Node, value: bool) -> bool:
    return isinstance(node, Value) and node.value is value


def _kind(value: Any) -> str:
    try:
        return rt.kind_of(value).name
    except CelError:
        return type(value).__name__


# --- one row, in Python ----------------------------------------------------------------

_COMPARE: Mapping[str, Callable[[Any, Any], bool]] = {
    "==": rt.eq,
    "!=": rt.ne,
    "<": rt.lt,
    "<=": rt.le,
    ">": rt.gt,
    ">=": rt.ge,
}
_CALL: Mapping[str, Callable[..., Any]] = {
    "startsWith": ops.starts_with,
    "endsWith": ops.ends_with,
    "contains": ops.contains,
    "size": ops.size,
}


class RowError(Exception):
    """A residual errored on a row (as the condition would have)."""


def holds(node: Node, resource: Mapping[str, Any]) -> bool | None:
    """True or False as the condition evaluates on this resource, None for an error
    (or a value that is not a bool). ``resource`` is ``{"id": ..., "properties": {...}}``."""
    try:
        made = evaluate(node, resource)
    except RowError:
        return None
    return made if type(made) is bool else None


def evaluate(node: Node, resource: Mapping[str, Any]) -> Any:
    """The node's CEL value on one resource; raises :class:`RowError` for a CEL error.

    Raises :class:`~zerotrust.errors.ZeroTrustError` (through the plan) for
    :class:`Opaque`, which only the original condition can evaluate.
    """
    kind = type(node)
    if kind is Value:
        return node.value  # type: ignore[attr-defined]
    if kind is Error:
        raise RowError(node.message)  # type: ignore[attr-defined]
    if kind is Field:
        return _select(resource, node.path)  # type: ignore[attr-defined]
    if kind is Has:
        path = node.path  # type: ignore[attr-defined]
        parent = _select(resource, path[:-1])
        try:
            return rt.has(parent, path[-1])
        except (CelError, KeyError, TypeError) as exc:
            raise RowError(str(exc)) from None
    if kind is And or kind is Or:
        stop = kind is Or  # the value that decides: true for ||, false for &&
        failed = False
        for side in (node.left, node.right):  # type: ignore[attr-defined]
            try:
                made = evaluate(side, resource)
            except RowError:
                failed = True
                continue
            if made is stop:
                return stop
            if type(made) is not bool:
                failed = True
        if failed:
            raise RowError("no such overload (a non-boolean or an error)")
        return not stop
    if kind is Not or kind is Fires:
        try:
            made = evaluate(node.operand, resource)  # type: ignore[attr-defined]
        except RowError:
            if kind is Fires:
                return True
            raise
        if kind is Fires:
            return made is not False
        if type(made) is not bool:
            raise RowError(f"no such overload: !_({_kind(made)})")
        return not made
    try:
        if kind is Compare:
            fn = _COMPARE[node.op]  # type: ignore[attr-defined]
            return fn(evaluate(node.left, resource), evaluate(node.right, resource))  # type: ignore[attr-defined]
        if kind is In:
            item = evaluate(node.item, resource)  # type: ignore[attr-defined]
            return rt.contained(item, evaluate(node.container, resource))  # type: ignore[attr-defined]
        if kind is Call:
            target = evaluate(node.target, resource)  # type: ignore[attr-defined]
            args = [evaluate(a, resource) for a in node.args]  # type: ignore[attr-defined]
            return _CALL[node.name](target, *args)  # type: ignore[attr-defined]
    except (CelError, KeyError, TypeError, ValueError, OverflowError) as exc:
        raise RowError(str(exc)) from None
    raise RowError(f"{type(node).__name__} is evaluated by the original condition only")


def _select(resource: Mapping[str, Any], path: tuple[str, ...]) -> Any:
    value: Any = resource
    for step in path:
        try:
            value = rt.index(value, step)
        except (CelError, KeyError, TypeError) as exc:
            message = f"no such key: {step!r}" if isinstance(exc, KeyError) else str(exc)
            raise RowError(message) from None
    return value


# --- reading a residual ----------------------------------------------------------------


def children(node: Node) -> tuple[Node, ...]:
    if isinstance(node, And | Or):
        return (node.left, node.right)
    if isinstance(node, Not | Fires):
        return (node.operand,)
    if isinstance(node, Compare):
        return (node.left, node.right)
    if isinstance(node, In):
        return (node.item, node.container)
    if isinstance(node, Call):
        return (node.target, *node.args)
    return ()


def walk(node: Node) -> list[Node]:
    found, stack = [], [node]
    while stack:
        current = stack.pop()
        found.append(current)
        stack.extend(children(current))
    return found


def fields(node: Node) -> tuple[str, ...]:
    """The attribute paths a residual reads (``resource.id``, ``resource.properties.a``),
    sorted: what a filter's mapping must name."""
    return tuple(sorted({n.name for n in walk(node) if isinstance(n, Field | Has)}))


def expressible(node: Node) -> str | None:
    """None when every node is in the plan language; else what is not (for messages)."""
    for n in walk(node):
        if isinstance(n, Opaque):
            return f"{n.source!r} is outside what a plan can express"
    return None


def _path_text(path: tuple[str, ...]) -> str:
    text = "resource"
    for step in path:
        text += f".{step}" if step.isidentifier() else f"[{json.dumps(step, ensure_ascii=False)}]"
    return text


def to_cel(node: Node) -> str:
    """The residual as CEL-like text (``fires(x)`` is the one word CEL lacks)."""
    from zerotrust.plan._render import cel_text  # (the renderer reads the node types)

    return cel_text(node)


def to_json(node: Node) -> Any:
    """The residual as JSON data: ``{"op": ..., ...}`` nodes, known values as
    ``{"value": v}`` (or ``{"value": text, "type": kind}`` when JSON has no such value)."""
    from zerotrust.plan._render import json_data

    return json_data(node)
