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
from zerotrust.cel._compiler import FUNCTIONS, _error_message, compile_expression
from zerotrust.cel._syntax import parse
from zerotrust.plan import residual as r
from zerotrust.policy.typecheck_nodes import exprs as _exprs
from zerotrust.policy.typecheck_nodes import unwrap as _unwrap

__all__ = ["Template", "template"]

_RELATIONS = {
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_eq": "==",
    "relation_ne": "!=",
}
_METHODS = frozenset({"startsWith", "endsWith", "contains", "size"})
#: The most keys of known data a condition's ``data.m[resource.id]`` is enumerated over;
#: past it the condition is :class:`Opaque` (deciding rows one by one).
MAX_KEYS = 10_000

#: A template: called with the request's bindings, gives the residual.
Template = Callable[[Mapping[str, Any]], r.Node]


def template(source: str, functions: Mapping[str, SetFunction] | None) -> Template:
    """The template of one condition's ``source`` (already accepted by the compiler)."""
    return _Builder(source, functions).build(parse(source, FUNCTIONS).tree)


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
                return r.Error(_error_message(exc))

        return known

    def opaque(self, node: Any) -> Template:
        made = r.Opaque(self.text(node))
        return lambda bindings: made

    def build(self, node: Any) -> Template:
        node = _unwrap(node)
        if not _reads_resource(node):
            return self.known(node)
        keyed = _id_keys(node)
        if keyed:
            return self.enumerated(node, keyed)
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

    def enumerated(self, node: Any, containers: list[Any]) -> Template:
        """A condition that reads the resource only through ``m[resource.id]`` and
        ``resource.id in m`` with ``m`` known data: evaluated at plan time for every key
        of those ``m`` and for one id outside them (every such id gives the same, as
        ``m[id]`` is then an error and ``id in m`` false), then written as lists of ids."""
        fn = compile_expression(self.text(node), VARIABLES, self.functions)
        domains = [self.known(c) for c in containers]
        source = self.text(node)

        def enumerated(bindings: Mapping[str, Any]) -> r.Node:
            keys: set[str] = set()
            for domain in domains:
                made = domain(bindings)
                value = made.value if isinstance(made, r.Value) else None
                if isinstance(value, Mapping | list):
                    keys.update(k for k in value if type(k) is str)
                if len(keys) > MAX_KEYS:
                    return r.Opaque(source)
            resource = dict(bindings["resource"])
            outside = "\uffff" * (max(map(len, keys), default=0) + 1)
            outcomes: dict[str, list[str]] = {"true": [], "false": [], "error": []}
            for key in sorted(keys):
                outcome = _outcome(fn, {**bindings, "resource": {**resource, "id": key}})
                if outcome is None:
                    return r.Opaque(source)
                outcomes[outcome].append(key)
            other = fn_value(fn, {**bindings, "resource": {**resource, "id": outside}})
            if isinstance(other, r.Error):  # (said without the stand-in id)
                other = r.Error("an error for every id not in the data")
            elif not r.is_boolean(other):
                return r.Opaque(source)
            ids = r.Field(("id",))
            rest = r.or_(
                r.and_(_among(ids, outcomes["error"]), r.Error("an error for these ids")),
                r.and_(r.not_(_among(ids, sorted(keys))), other),
            )
            return r.or_(
                _among(ids, outcomes["true"]),
                r.and_(r.not_(_among(ids, outcomes["false"])), rest),
            )

        return enumerated

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


def _id_keys(node: Any) -> list[Any]:
    """The known containers ``m`` when ``node`` reads the resource only as ``resource.id``
    in ``m[resource.id]`` (at least once) or ``resource.id in m``; else empty."""
    containers: list[Any] = []
    indexed = False
    stack = [node]
    while stack:
        current = _unwrap(stack.pop())
        if not isinstance(current, lark.Tree):
            continue
        if current.data == "member_dot" and _is_resource(_unwrap(current.children[0])):
            if str(current.children[1]) == "type":
                continue
            return []  # resource.id outside a key position, or another field
        if _is_resource(current):
            return []
        if current.data == "member_index" and _is_id(current.children[1]):
            if _reads_resource(current.children[0]):
                return []
            containers.append(current.children[0])
            indexed = True
            continue
        if (
            current.data == "relation"
            and current.children[0].data == "relation_in"
            and _is_id(current.children[0].children[0])
        ):
            if _reads_resource(current.children[1]):
                return []
            containers.append(current.children[1])
            continue
        stack.extend(current.children)
    return containers if indexed else []


def _is_id(node: Any) -> bool:
    inner = _unwrap(node)
    return (
        isinstance(inner, lark.Tree)
        and inner.data == "member_dot"
        and str(inner.children[1]) == "id"
        and _is_resource(_unwrap(inner.children[0]))
    )


def _among(ids: r.Node, keys: list[str]) -> r.Node:
    return r.In(ids, r.Value(keys)) if keys else r.Value(False)


def fn_value(fn: Callable[[Any], Any], bindings: Mapping[str, Any]) -> r.Node:
    try:
        return r.Value(fn(bindings))
    except Exception as exc:  # a CEL error: kept, as CEL keeps it
        return r.Error(_error_message(exc))


def _outcome(fn: Callable[[Any], Any], bindings: Mapping[str, Any]) -> str | None:
    """ "true", "false" or "error" for one id; None for a value that is not a bool."""
    made = fn_value(fn, bindings)
    if isinstance(made, r.Error):
        return "error"
    if type(made.value) is bool:  # type: ignore[attr-defined]
        return "true" if made.value else "false"  # type: ignore[attr-defined]
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
