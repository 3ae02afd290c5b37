"""Partial evaluation: a condition, with everything but the resource known, to a residual.

Each condition is read once per policy set into a *template*: its syntax tree with every
maximal sub-expression that does not read the resource (``resource.type`` aside, which a
plan knows) compiled into a function of the request's other variables. Planning a
request instantiates the templates: the compiled parts are called with the request's
values (an error is kept as an :class:`Error` leaf, as CEL keeps it), and what reads the
resource becomes residual nodes. CEL is a pure language, so a sub-expression evaluated
on its own gives what it gives inside the whole; what a macro binds is never split off
(a macro that reads the resource is :class:`Opaque` as a whole).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import lark

from zerotrust.cel import VARIABLES, SetFunction
from zerotrust.cel._compiler import FUNCTIONS, compile_expression
from zerotrust.cel._syntax import parse
from zerotrust.plan import residual as r

__all__ = ["Template", "template"]

_WRAPPERS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication"}
    | {"unary", "member", "primary", "paren_expr"}
)
_RELATIONS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
}
_METHODS = frozenset({"startsWith", "endsWith", "contains", "size"})

#: A template: called with the request's bindings, gives the residual.
Template = Callable[[Mapping[str, Any]], r.Node]


def template(source: str, functions: Mapping[str, SetFunction] | None) -> Template:
    """The template of one condition's ``source`` (already accepted by the compiler)."""
    return _Builder(source, functions).build(parse(source, FUNCTIONS).tree)


def _unwrap(node: Any) -> Any:
    while (
        isinstance(node, lark.Tree)
        and len(node.children) == 1
        and node.data in _WRAPPERS
        and isinstance(node.children[0], lark.Tree)
    ):
        node = node.children[0]
    return node


def _reads_resource(node: Any) -> bool:
    """Whether ``node`` reads the resource beyond ``resource.type``."""
    stack = [node]
    while stack:
        current = _unwrap(stack.pop())
        if not isinstance(current, lark.Tree):
            continue
        if current.data == "member_dot" and str(current.children[1]) == "type":
            target = _unwrap(current.children[0])
            if _is_resource(target):
                continue
        if _is_resource(current):
            return True
        stack.extend(current.children)
    return False


def _is_resource(node: Any) -> bool:
    return (
        isinstance(node, lark.Tree)
        and node.data in ("ident", "dot_ident")
        and str(node.children[0]) == "resource"
    )


def _exprs(node: Any) -> list[Any]:
    return list(node.children) if isinstance(node, lark.Tree) else []


class _Builder:
    def __init__(self, source: str, functions: Mapping[str, SetFunction] | None) -> None:
        self.source = source
        self.functions = functions

    def text(self, node: Any) -> str:
        meta = node.meta
        return self.source[meta.start_pos : meta.end_pos]

    def known(self, node: Any) -> Template:
        fn = compile_expression(self.text(node), VARIABLES, self.functions)

        def known(bindings: Mapping[str, Any]) -> r.Node:
            try:
                return r.Value(fn(bindings))
            except Exception as exc:  # a CEL error at plan time: kept, as CEL keeps it
                return r.Error(_message(exc))

        return known

    def opaque(self, node: Any) -> Template:
        made = r.Opaque(self.text(node))
        return lambda bindings: made

    def build(self, node: Any) -> Template:
        node = _unwrap(node)
        if not _reads_resource(node):
            return self.known(node)
        kind = node.data
        kids = node.children
        if kind in ("conditionaland", "conditionalor"):
            left, right = self.build(kids[0]), self.build(kids[1])
            join = r.and_ if kind == "conditionaland" else r.or_
            return lambda b: join(left(b), right(b))
        if kind == "unary" and kids[0].data == "unary_not":
            operand = self.build(kids[1])
            return lambda b: r.not_(operand(b))
        if kind == "relation" and kids[0].data in _RELATIONS:
            op = _RELATIONS[kids[0].data]
            left, right = self.build(kids[0].children[0]), self.build(kids[1])
            return lambda b: _compare(op, left(b), right(b))
        if kind == "relation" and kids[0].data == "relation_in":
            item, container = self.build(kids[0].children[0]), self.build(kids[1])
            return lambda b: _contained(item(b), container(b))
        if kind == "expr" and len(kids) == 3:
            return self.choice(node, kids)
        path = self.path(node)
        if path is not None:
            return path
        if kind == "ident_arg" and str(kids[0]) == "has":
            return self.has(node, _exprs(kids[1]) if len(kids) > 1 else [])
        if kind == "ident_arg" and str(kids[0]) == "size":
            args = _exprs(kids[1]) if len(kids) > 1 else []
            if len(args) == 1:
                target = self.build(args[0])
                return lambda b: _call("size", target(b), ())
        if kind == "member_dot_arg" and str(kids[1]) in _METHODS:
            args = _exprs(kids[2]) if len(kids) > 2 else []
            if len(args) == (0 if str(kids[1]) == "size" else 1):
                name = str(kids[1])
                target = self.build(kids[0])
                arg_templates = [self.build(a) for a in args]
                return lambda b: _call(name, target(b), tuple(t(b) for t in arg_templates))
        return self.opaque(node)

    def choice(self, node: Any, kids: list[Any]) -> Template:
        """``c ? a : b``: a branch when ``c`` is known, else outside the plan language."""
        if _reads_resource(kids[0]):
            return self.opaque(node)
        test, yes, no = self.known(kids[0]), self.build(kids[1]), self.build(kids[2])

        def choose(bindings: Mapping[str, Any]) -> r.Node:
            made = test(bindings)
            if isinstance(made, r.Value) and type(made.value) is bool:
                return yes(bindings) if made.value else no(bindings)
            if isinstance(made, r.Error):
                return made
            return r.Error("no such overload: _?_:_ of a non-boolean")

        return choose

    def has(self, node: Any, args: list[Any]) -> Template:
        arg = _unwrap(args[0]) if len(args) == 1 else None
        if arg is None or arg.data != "member_dot":
            return self.opaque(node)
        parent = self.path(arg.children[0])
        if parent is None:
            return self.opaque(node)
        field = str(arg.children[1])

        def has(bindings: Mapping[str, Any]) -> r.Node:
            made = parent(bindings)
            if isinstance(made, r.Field):
                return r.Has((*made.path, field))
            return made if isinstance(made, r.Error) else r.Opaque(self.text(node))

        return has

    def path(self, node: Any) -> Template | None:
        """``resource.id``, ``resource.properties.a``, ``resource.properties[k]`` (``k``
        known): a :class:`Field`; None when ``node`` is no such path."""
        node = _unwrap(node)
        if _is_resource(node):
            return lambda b: r.Field(())
        if node.data == "member_dot":
            parent = self.path(node.children[0])
            if parent is None:
                return None
            step, source = str(node.children[1]), self.text(node)
            return lambda b: _step(parent(b), step, source)
        if node.data == "member_index":
            base = self.path(node.children[0])
            if base is None or _reads_resource(node.children[1]):
                return None
            key = self.known(node.children[1])

            def index(bindings: Mapping[str, Any]) -> r.Node:
                made = key(bindings)
                if isinstance(made, r.Error):
                    return made
                if isinstance(made, r.Value) and type(made.value) is str:
                    return _step(base(bindings), made.value, self.text(node))
                return r.Opaque(self.text(node))

            return index
        return None


def _step(base: r.Node, step: str, source: str) -> r.Node:
    if isinstance(base, r.Field):
        if not base.path and step not in ("id", "properties"):
            if step == "type":  # (only reached through a computed key: resource["type"])
                return r.Opaque(source)
            return r.Error(f"no such key: {step!r}")
        return r.Field((*base.path, step))
    return base


def _compare(op: str, left: r.Node, right: r.Node) -> r.Node:
    if isinstance(left, r.Error):
        return left
    if isinstance(right, r.Error):
        return right
    return r.Compare(op, left, right)


def _contained(item: r.Node, container: r.Node) -> r.Node:
    if isinstance(item, r.Error):
        return item
    if isinstance(container, r.Error):
        return container
    if (
        isinstance(container, r.Field)
        and container.path == ("properties",)
        and isinstance(item, r.Value)
        and type(item.value) is str
    ):
        return r.Has(("properties", item.value))  # a key of the properties map
    return r.In(item, container)


def _call(name: str, target: r.Node, args: tuple[r.Node, ...]) -> r.Node:
    for node in (target, *args):
        if isinstance(node, r.Error):
            return node
    return r.Call(name, target, args)


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError):
        return f"no such key: {exc.args[0]!r}" if exc.args else "no such key"
    return str(exc) or type(exc).__name__
