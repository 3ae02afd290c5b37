"""Turning a parsed CEL tree into the source of one Python function.

Nothing from the policy text is pasted into the source except identifiers that match
CEL's ``IDENT`` pattern (map keys and variable names, through ``repr``) and integers
(through ``repr(int)``). Strings, bytes, doubles, regular expressions, time zones and
list constants travel in a tuple of constants bound as closure variables. All Python
names in the source are the generator's own (``t3``, ``k0``, ``_add``), so a policy
cannot name a Python object.

Strict operators compose as plain expressions: an error is a raised exception that
passes through. Only ``&&``, ``||``, ``?:`` and the macros ``all``/``exists`` look at
errors, so only they emit ``try`` blocks (free in CPython 3.11 until something raises).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lark

from zerotrust.cel import _compiler_runtime as rt
from zerotrust.cel._backend import CelCompileError

__all__ = ["CelLiteralError", "Program", "generate"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_INLINE_CLASS = {"int": "int", "double": "float", "string": "str"}
_PY_LITERAL_OR_CONST = re.compile(r"-?[0-9]+|k[0-9]+")
_PY_LITERAL = re.compile(r"-?[0-9]+|True|False|None|\[\]|\{\}")
_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_NUMERIC = frozenset({"int", "uint", "double"})
_ORDERED_SAME = frozenset({"string", "bytes", "bool", "timestamp", "duration"})
_RELATIONS = {
    "relation_eq": "==",
    "relation_ne": "!=",
    "relation_lt": "<",
    "relation_le": "<=",
    "relation_gt": ">",
    "relation_ge": ">=",
    "relation_in": "in",
}
_COMPARE_HELPER = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}
_ARITH_HELPER = {
    "addition_add": "_add",
    "addition_sub": "_sub",
    "multiplication_mul": "_mul",
    "multiplication_div": "_div",
    "multiplication_mod": "_mod",
}
_CONVERSION_KIND = {
    "int": "int",
    "uint": "uint",
    "double": "double",
    "string": "string",
    "bytes": "bytes",
    "bool": "bool",
    "timestamp": "timestamp",
    "duration": "duration",
    "type": "type",
}
_STRING_FUNCTIONS = {
    "contains": "_contains",
    "startsWith": "_starts_with",
    "endsWith": "_ends_with",
}
# The same on a value known to be a str, ``{t}`` the receiver and ``{k}`` the argument.
_STRING_INLINE = {
    "contains": "({k} in {t})",
    "startsWith": "{t}.startswith({k})",
    "endsWith": "{t}.endswith({k})",
}
_CONST = re.compile(r"k[0-9]+")
# Passthrough names that wrap: single-child nodes the generator walks through.
_WRAPPERS = frozenset({"member", "primary", "paren_expr"})

#: The helpers generated code may call, by the name it uses.
HELPERS: Mapping[str, Any] = {
    "_CelError": rt.CelError,
    "_Exception": Exception,
    "_list": list,
    "_eq": rt.eq,
    "_ne": rt.ne,
    "_lt": rt.lt,
    "_le": rt.le,
    "_gt": rt.gt,
    "_ge": rt.ge,
    "_add": rt.add,
    "_sub": rt.sub,
    "_mul": rt.mul,
    "_div": rt.div,
    "_mod": rt.mod,
    "_neg": rt.neg,
    "_not": rt.not_,
    "_truth": rt.truth,
    "_not_bool": rt.not_bool,
    "_index": rt.index,
    "_select": rt.select,
    "_has": rt.has,
    "_in": rt.contained,
    "_iterate": rt.iterate,
    "_make_map": rt.make_map,
    "_size": rt.size,
    "_contains": rt.contains,
    "_starts_with": rt.starts_with,
    "_ends_with": rt.ends_with,
    "_matches": rt.matches,
    "_matches_compiled": rt.matches_compiled,
    "_call_extra": rt.call_extra,
    **{f"_conv_{name}": fn for name, fn in rt.CONVERSIONS.items()},
    **{f"_acc_{name}": fn for name, fn in rt.ACCESSORS.items()},
}


class CelLiteralError(CelCompileError):
    """A literal argument that would fail on every evaluation (bad regex, timestamp...)."""


class Program:
    """Generated source for one expression and the constants it closes over."""

    __slots__ = ("body", "constants", "result")

    def __init__(self, body: list[str], result: str, constants: list[Any]) -> None:
        self.body = body
        self.result = result
        self.constants = constants


class _Code:
    """A Python expression and the CEL type it is known to have (``None``: any)."""

    __slots__ = ("kind", "src")

    def __init__(self, src: str, kind: str | None) -> None:
        self.src = src
        self.kind = kind


def _where(node: lark.Tree[Any] | lark.Token) -> tuple[int, int]:
    if isinstance(node, lark.Token):
        return (node.line or 1, node.column or 1)
    meta = node.meta
    if getattr(meta, "empty", True):
        return 1, 1
    return (meta.line or 1, meta.column or 1)


def _fail(node: lark.Tree[Any] | lark.Token, message: str) -> CelCompileError:
    line, column = _where(node)
    return CelCompileError(message, line, column)


def generate(
    tree: lark.Tree[Any],
    variables: frozenset[str],
    extras: Mapping[str, tuple[Callable[..., bool], int]],
) -> Program:
    """Generate the function body for ``tree``; ``variables`` are the names it may read."""
    gen = _Generator(variables, extras)
    code = gen.expr(tree)
    return Program(gen.lines, code.src, gen.constants)


class _Generator:
    def __init__(
        self, variables: frozenset[str], extras: Mapping[str, tuple[Callable[..., bool], int]]
    ) -> None:
        self.variables = variables
        self.extras = extras
        self.lines: list[str] = []
        self.depth = 1
        self.constants: list[Any] = []
        self.counter = 0
        self.scope: dict[str, str] = {}

    # --- emission -------------------------------------------------------------------------

    def emit(self, line: str) -> None:
        self.lines.append("    " * self.depth + line)

    def tmp(self, prefix: str = "t") -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    def const(self, value: Any) -> str:
        self.constants.append(value)
        return f"k{len(self.constants) - 1}"

    def block(self) -> _Indent:
        return _Indent(self)

    # --- dispatch -------------------------------------------------------------------------

    def expr(self, node: lark.Tree[Any]) -> _Code:
        while True:
            data = node.data
            children = node.children
            if data in _WRAPPERS or (
                data in ("expr", "conditionalor", "conditionaland", "relation", "addition")
                and len(children) == 1
            ):
                child = children[0]
                if not isinstance(child, lark.Tree):
                    raise _fail(node, f"unexpected {data} node")
                node = child
                continue
            if data in ("multiplication", "unary") and len(children) == 1:
                node = children[0]
                continue
            break
        method = getattr(self, f"n_{data}", None)
        if method is None:
            raise _fail(node, f"unsupported construct: {data}")
        result: _Code = method(node)
        return result

    def subtrees(self, node: lark.Tree[Any]) -> list[lark.Tree[Any]]:
        return [c for c in node.children if isinstance(c, lark.Tree)]

    # --- logic ----------------------------------------------------------------------------

    def n_expr(self, node: lark.Tree[Any]) -> _Code:
        cond_node, then_node, else_node = self.subtrees(node)
        cond = self.expr(cond_node)
        test = cond.src if cond.kind == "bool" else f"_truth({cond.src})"
        result = self.tmp()
        self.emit(f"if {test}:")
        with self.block():
            then = self.expr(then_node)
            self.emit(f"{result} = {then.src}")
        self.emit("else:")
        with self.block():
            other = self.expr(else_node)
            self.emit(f"{result} = {other.src}")
        return _Code(result, then.kind if then.kind == other.kind else None)

    def _operands(self, node: lark.Tree[Any], data: str) -> list[lark.Tree[Any]]:
        """Flatten a left-associative chain ``a || b || c`` into its operands."""
        out: list[lark.Tree[Any]] = []
        while node.data == data and len(node.children) == 2:
            left, right = self.subtrees(node)
            out.append(right)
            node = left
        out.append(node)
        out.reverse()
        return out

    def n_conditionalor(self, node: lark.Tree[Any]) -> _Code:
        return self._logic(self._operands(node, "conditionalor"), absorbing=True)

    def n_conditionaland(self, node: lark.Tree[Any]) -> _Code:
        return self._logic(self._operands(node, "conditionaland"), absorbing=False)

    def _guarded(self, node: lark.Tree[Any], target: str) -> None:
        """``target = node`` as a bool, or the error it raised (without traceback)."""
        self.emit("try:")
        with self.block():
            code = self.expr(node)
            self.emit(f"{target} = {code.src}")
            if code.kind != "bool":
                self.emit(f"if {target}.__class__ is not bool:")
                with self.block():
                    self.emit(f"raise _not_bool({target})")
        self.emit("except _Exception as x:")
        with self.block():
            self.emit("x.__traceback__ = None")
            self.emit(f"{target} = x")

    def _logic(self, operands: list[lark.Tree[Any]], *, absorbing: bool) -> _Code:
        """CEL ``||`` (absorbing ``true``) and ``&&`` (absorbing ``false``), commutative on errors.

        The accumulator holds the neutral value, the absorbing value, or the first error.
        """
        absorb = "True" if absorbing else "False"
        neutral = "False" if absorbing else "True"
        acc = self.tmp("r")
        self._guarded(operands[0], acc)
        value = self.tmp("v")
        for operand in operands[1:]:
            self.emit(f"if {acc} is not {absorb}:")
            with self.block():
                self._guarded(operand, value)
                self.emit(f"if {value} is {absorb} or {acc} is {neutral}:")
                with self.block():
                    self.emit(f"{acc} = {value}")
        self.emit(f"if {acc}.__class__ is not bool:")
        with self.block():
            self.emit(f"raise {acc}")
        return _Code(acc, "bool")

    # --- relations and arithmetic ---------------------------------------------------------

    def n_relation(self, node: lark.Tree[Any]) -> _Code:
        op_node, right_node = self.subtrees(node)
        op = _RELATIONS[op_node.data]
        (left_node,) = self.subtrees(op_node)
        left = self.expr(left_node)
        right = self.expr(right_node)
        if op == "in":
            return self._in(left, right, right_node)
        if op in ("==", "!="):
            src = self._equal(left, right)
            return _Code(src if op == "==" else f"(not {src})", "bool")
        if left.kind == right.kind and (left.kind in _NUMERIC or left.kind in _ORDERED_SAME):
            return _Code(f"({left.src} {op} {right.src})", "bool")
        helper = _COMPARE_HELPER[op]
        for dyn, known, swapped in ((left, right, False), (right, left, True)):
            if (
                dyn.kind is None
                and known.kind in _INLINE_CLASS
                and _PY_LITERAL_OR_CONST.fullmatch(known.src)
            ):
                # the common `field < 10`: Python's < once the class is known, else the helper
                t = self.tmp()
                a, b = (known.src, t) if swapped else (t, known.src)
                cls = _INLINE_CLASS[known.kind]
                return _Code(
                    f"({a} {op} {b} if ({t} := {dyn.src}).__class__ is {cls} "
                    f"else {helper}({a}, {b}))",
                    "bool",
                )
        if left.kind is None and right.kind is None:
            # two fields: Python's operator once both are int, or both str (code points)
            a, b = self.tmp(), self.tmp()
            return _Code(
                f"({a} {op} {b} if ({a} := {left.src}).__class__ is ({b} := {right.src}).__class__"
                f" and ({a}.__class__ is int or {a}.__class__ is str) else {helper}({a}, {b}))",
                "bool",
            )
        return _Code(f"{helper}({left.src}, {right.src})", "bool")

    def _equal(self, left: _Code, right: _Code) -> str:
        """Python ``==`` where it agrees with CEL's heterogeneous equality."""
        for a, b in ((left, right), (right, left)):
            if a.kind == "null" and b.kind is None and not _PY_LITERAL.fullmatch(b.src):
                return f"({b.src} is None)"
            if a.kind in ("string", "bytes", "timestamp", "duration", "type"):
                return f"({a.src} == {b.src})"
        if left.kind == right.kind and left.kind in ("int", "uint", "double", "bool"):
            return f"({left.src} == {right.src})"
        if left.kind is None and right.kind is None:
            # two fields, typically strings: Python's == once both are known to be str
            t, u = self.tmp(), self.tmp()
            return (
                f"({t} == {u} if ({t} := {left.src}).__class__ is ({u} := {right.src}).__class__"
                f" and {t}.__class__ is str else _eq({t}, {u}))"
            )
        return f"_eq({left.src}, {right.src})"

    def _in(self, item: _Code, container: _Code, node: lark.Tree[Any]) -> _Code:
        constant = self._constant_list(node)
        if constant is not None and constant:
            types = {type(v) for v in constant}
            if types in ({str}, {int}):
                members = self.const(frozenset(constant))
                whole = self.const(constant)
                t = self.tmp()
                cls = "str" if types == {str} else "int"
                return _Code(
                    f"({t} in {members} if ({t} := {item.src}).__class__ is {cls} "
                    f"else _in({t}, {whole}))",
                    "bool",
                )
        if item.kind == "string" and container.kind is None and _CONST.fullmatch(item.src):
            # `"admin" in subject.roles`: Python's `in` on a list or map is CEL's for a str
            t = self.tmp()
            return _Code(
                f"({item.src} in {t} if ({t} := {container.src}).__class__ is _list "
                f"or {t}.__class__ is dict else _in({item.src}, {t}))",
                "bool",
            )
        return _Code(f"_in({item.src}, {container.src})", "bool")

    def _constant_list(self, node: lark.Tree[Any]) -> list[Any] | None:
        """The values of a list literal made only of scalar literals, else None."""
        while node.data in _WRAPPERS or (
            (
                node.data in ("expr", "conditionalor", "conditionaland", "relation", "addition")
                or node.data in ("multiplication", "unary")
            )
            and len(node.children) == 1
        ):
            child = node.children[0]
            if not isinstance(child, lark.Tree):
                return None
            node = child
        if node.data != "list_lit":
            return None
        if not node.children:
            return []
        values: list[Any] = []
        for element in self.subtrees(node.children[0]):
            inner = element
            while len(inner.children) == 1 and isinstance(inner.children[0], lark.Tree):
                inner = inner.children[0]
            if inner.data != "literal":
                return None
            token = inner.children[0]
            if not isinstance(token, lark.Token) or token.type not in ("STRING_LIT", "INT_LIT"):
                return None
            values.append(self._literal_value(token))
        return values

    def _arith(self, node: lark.Tree[Any]) -> _Code:
        op_node, right_node = self.subtrees(node)
        (left_node,) = self.subtrees(op_node)
        left = self.expr(left_node)
        right = self.expr(right_node)
        helper = _ARITH_HELPER[op_node.data]
        kind = None
        if left.kind == right.kind and left.kind in ("int", "uint", "double"):
            kind = left.kind
        if helper == "_add" and left.kind == right.kind == "string":
            return _Code(f"({left.src} + {right.src})", "string")
        return _Code(f"{helper}({left.src}, {right.src})", kind)

    n_addition = _arith
    n_multiplication = _arith

    def n_unary(self, node: lark.Tree[Any]) -> _Code:
        op_node, operand_node = self.subtrees(node)
        operand = self.expr(operand_node)
        if op_node.data == "unary_not":
            if operand.kind == "bool":
                return _Code(f"(not {operand.src})", "bool")
            t = self.tmp()
            return _Code(
                f"(False if ({t} := {operand.src}) is True else True if {t} is False "
                f"else _not({t}))",
                "bool",
            )
        kind = operand.kind if operand.kind in ("int", "double") else None
        return _Code(f"_neg({operand.src})", kind)

    # --- members --------------------------------------------------------------------------

    def _field(self, token: Any) -> str:
        name = str(token)
        if not _IDENT.fullmatch(name):
            raise _fail(token, f"invalid field name {name!r}")
        return repr(name)

    def n_member_dot(self, node: lark.Tree[Any]) -> _Code:
        target_node, token = node.children
        target = self.expr(target_node)
        field = self._field(token)
        if target.kind in (None, "map"):
            # plain dicts: [] raises KeyError / TypeError on everything that is not a map
            return _Code(f"{target.src}[{field}]", None)
        return _Code(f"_select({target.src}, {field})", None)

    def n_member_index(self, node: lark.Tree[Any]) -> _Code:
        target_node, index_node = self.subtrees(node)
        target = self.expr(target_node)
        key = self.expr(index_node)
        if key.kind == "string" and target.kind in (None, "map"):
            t = self.tmp()
            return _Code(
                f"({t}[{key.src}] if ({t} := {target.src}).__class__ is dict "
                f"else _index({t}, {key.src}))",
                None,
            )
        return _Code(f"_index({target.src}, {key.src})", None)

    def n_member_object(self, node: lark.Tree[Any]) -> _Code:
        raise _fail(node, "message construction (Type{field: ...}) is not supported")

    def n_member_dot_arg(self, node: lark.Tree[Any]) -> _Code:
        target_node = node.children[0]
        token = node.children[1]
        args_node = node.children[2] if len(node.children) > 2 else None
        args = self.subtrees(args_node) if isinstance(args_node, lark.Tree) else []
        name = str(token)
        if not isinstance(target_node, lark.Tree):
            raise _fail(node, "unexpected method call shape")
        if name in _MACROS:
            return self._macro(node, name, target_node, args)
        target = self.expr(target_node)
        return self._call(token, name, [target, *(self.expr(a) for a in args)], method=True)

    def _args(self, node: lark.Tree[Any]) -> list[lark.Tree[Any]]:
        if len(node.children) > 1 and isinstance(node.children[1], lark.Tree):
            return self.subtrees(node.children[1])
        return []

    def n_ident_arg(self, node: lark.Tree[Any]) -> _Code:
        token = node.children[0]
        name = str(token)
        arg_nodes = self._args(node)
        if name == "has":
            return self._has(node, arg_nodes)
        if name in _MACROS:
            raise _fail(token, f"{name}() is a macro: call it as list.{name}(x, predicate)")
        literal = self._fold(token, name, arg_nodes)
        if literal is not None:
            return literal
        return self._call(token, name, [self.expr(a) for a in arg_nodes], method=False)

    n_dot_ident_arg = n_ident_arg

    def _fold(self, token: Any, name: str, arg_nodes: list[lark.Tree[Any]]) -> _Code | None:
        """``timestamp('...')`` and ``duration('...')`` of a literal: computed once."""
        if name not in ("timestamp", "duration") or len(arg_nodes) != 1:
            return None
        text = self._string_literal(arg_nodes[0])
        if text is None:
            return None
        try:
            value = rt.parse_timestamp(text) if name == "timestamp" else rt.parse_duration(text)
        except rt.CelError as exc:
            line, column = _where(token)
            raise CelLiteralError(str(exc), line, column) from None
        return _Code(self.const(value), name)

    def _string_literal(self, node: lark.Tree[Any]) -> str | None:
        inner = node
        while len(inner.children) == 1 and isinstance(inner.children[0], lark.Tree):
            inner = inner.children[0]
        if inner.data != "literal":
            return None
        token = inner.children[0]
        if isinstance(token, lark.Token) and token.type in ("STRING_LIT", "MLSTRING_LIT"):
            value = self._literal_value(token)
            return value if isinstance(value, str) else None
        return None

    def _has(self, node: lark.Tree[Any], arg_nodes: list[lark.Tree[Any]]) -> _Code:
        inner = arg_nodes[0] if len(arg_nodes) == 1 else None
        while inner is not None and inner.data != "member_dot":
            subs = self.subtrees(inner)
            inner = subs[0] if len(inner.children) == 1 and len(subs) == 1 else None
        if inner is None:
            raise _fail(node, "has() takes a field selection, like has(resource.owner)")
        target_node, token = inner.children
        target = self.expr(target_node)
        return _Code(f"_has({target.src}, {self._field(token)})", "bool")

    def _call(self, token: Any, name: str, args: list[_Code], *, method: bool) -> _Code:
        count = len(args)
        srcs = ", ".join(a.src for a in args)
        if name == "dyn" and count == 1 and not method:
            return _Code(args[0].src, None)
        if name in rt.CONVERSIONS and count == 1 and not method:
            if args[0].kind == name and name != "type":
                return args[0]
            return _Code(f"_conv_{name}({srcs})", _CONVERSION_KIND[name])
        if name == "size" and count == 1:
            if args[0].kind in ("string", "list"):
                return _Code(f"len({args[0].src})", "int")
            if args[0].kind is None:
                t = self.tmp()
                return _Code(
                    f"(len({t}) if ({t} := {args[0].src}).__class__ is _list "
                    f"or {t}.__class__ is str else _size({t}))",
                    "int",
                )
            return _Code(f"_size({srcs})", "int")
        if name in _STRING_FUNCTIONS and count == 2:
            target, arg = args
            if (
                arg.kind == "string"
                and _CONST.fullmatch(arg.src)
                and target.kind in (None, "string")
            ):
                inline = _STRING_INLINE[name].format(t="{t}", k=arg.src)
                if target.kind == "string":
                    return _Code(inline.format(t=target.src), "bool")
                t = self.tmp()
                return _Code(
                    f"({inline.format(t=t)} if ({t} := {target.src}).__class__ is str "
                    f"else {_STRING_FUNCTIONS[name]}({t}, {arg.src}))",
                    "bool",
                )
            return _Code(f"{_STRING_FUNCTIONS[name]}({srcs})", "bool")
        if name == "matches" and count == 2:
            pattern = self._pattern(args[1], token)
            if pattern is not None:
                return _Code(f"_matches_compiled({args[0].src}, {pattern})", "bool")
            return _Code(f"_matches({srcs})", "bool")
        if name in rt.ACCESSORS and count in (1, 2) and method:
            if count == 2 and args[1].src in self._string_consts:
                zone = self._zone(args[1], token)
                return _Code(f"_acc_{name}({args[0].src}, {zone})", "int")
            return _Code(f"_acc_{name}({srcs})", "int")
        if name in self.extras and not method:
            fn, arity = self.extras[name]
            if count != arity:
                raise _fail(token, f"{name}() takes {arity} argument(s), got {count}")
            return _Code(f"_call_extra({self.const(fn)}, {name!r}, {srcs})", "bool")
        form = "method" if method else "function"
        raise _fail(token, f"unsupported {form} {name}() with {count} argument(s)")

    @property
    def _string_consts(self) -> dict[str, str]:
        return {f"k{i}": v for i, v in enumerate(self.constants) if type(v) is str}

    def _pattern(self, arg: _Code, token: Any) -> str | None:
        text = self._string_consts.get(arg.src)
        if text is None:
            return None
        try:
            regex = rt.compile_regex(text)
        except rt.CelError as exc:
            line, column = _where(token)
            raise CelLiteralError(str(exc), line, column) from None
        return self.const(regex)

    def _zone(self, arg: _Code, token: Any) -> str:
        try:
            zone = rt.time_zone(self._string_consts[arg.src])
        except rt.CelError as exc:
            line, column = _where(token)
            raise CelLiteralError(str(exc), line, column) from None
        return self.const(zone)

    # --- macros ---------------------------------------------------------------------------

    def _macro_var(self, node: lark.Tree[Any], args: list[lark.Tree[Any]], name: str) -> str:
        inner: lark.Tree[Any] | None = args[0] if args else None
        while inner is not None and inner.data != "ident":
            subs = self.subtrees(inner)
            inner = subs[0] if len(inner.children) == 1 and len(subs) == 1 else None
        if inner is None:
            raise _fail(node, f"{name}() takes a variable name and an expression")
        var = str(inner.children[0])
        if not _IDENT.fullmatch(var):
            raise _fail(node, f"invalid variable name {var!r}")
        return var

    def _macro(
        self,
        node: lark.Tree[Any],
        name: str,
        target_node: lark.Tree[Any],
        args: list[lark.Tree[Any]],
    ) -> _Code:
        if len(args) not in (2, 3) or (len(args) == 3 and name != "map"):
            raise _fail(node, f"{name}() takes a variable name and an expression")
        var = self._macro_var(node, args, name)
        target = self.expr(target_node)
        items = self.tmp()
        self.emit(f"{items} = _iterate({target.src})")
        local = self.tmp("e")
        outer = self.scope.get(var)
        self.scope[var] = local
        try:
            if name in ("all", "exists"):
                return self._quantifier(items, local, args[1], absorbing=name == "exists")
            result = self.tmp()
            if name == "exists_one":
                self.emit(f"{result} = 0")
                self.emit(f"for {local} in {items}:")
                with self.block():
                    pred = self.expr(args[1])
                    test = pred.src if pred.kind == "bool" else f"_truth({pred.src})"
                    self.emit(f"if {test}:")
                    with self.block():
                        self.emit(f"{result} += 1")
                return _Code(f"({result} == 1)", "bool")
            self.emit(f"{result} = []")
            self.emit(f"for {local} in {items}:")
            with self.block():
                if name == "filter" or len(args) == 3:
                    pred = self.expr(args[1])
                    test = pred.src if pred.kind == "bool" else f"_truth({pred.src})"
                    self.emit(f"if not {test}:")
                    with self.block():
                        self.emit("continue")
                if name == "filter":
                    self.emit(f"{result}.append({local})")
                else:
                    mapped = self.expr(args[-1])
                    self.emit(f"{result}.append({mapped.src})")
            return _Code(result, "list")
        finally:
            if outer is None:
                del self.scope[var]
            else:
                self.scope[var] = outer

    def _quantifier(
        self, items: str, local: str, pred_node: lark.Tree[Any], *, absorbing: bool
    ) -> _Code:
        absorb = "True" if absorbing else "False"
        neutral = "False" if absorbing else "True"
        acc = self.tmp("r")
        value = self.tmp("v")
        self.emit(f"{acc} = {neutral}")
        self.emit(f"for {local} in {items}:")
        with self.block():
            self._guarded(pred_node, value)
            self.emit(f"if {value} is {absorb}:")
            with self.block():
                self.emit(f"{acc} = {absorb}")
                self.emit("break")
            self.emit(f"if {acc} is {neutral}:")
            with self.block():
                self.emit(f"{acc} = {value}")
        self.emit(f"if {acc}.__class__ is not bool:")
        with self.block():
            self.emit(f"raise {acc}")
        return _Code(acc, "bool")

    # --- names and literals ---------------------------------------------------------------

    def n_ident(self, node: lark.Tree[Any]) -> _Code:
        token = node.children[0]
        name = str(token)
        local = self.scope.get(name)
        if local is not None:
            return _Code(local, None)
        return self._global(token, name)

    def n_dot_ident(self, node: lark.Tree[Any]) -> _Code:
        token = node.children[0]
        return self._global(token, str(token))

    def _global(self, token: Any, name: str) -> _Code:
        if not _IDENT.fullmatch(name):
            raise _fail(token, f"invalid identifier {name!r}")
        if name in self.variables:
            return _Code(f"b[{name!r}]", None)
        if name in rt.TYPE_IDENTS:
            return _Code(self.const(rt.TYPE_IDENTS[name]), "type")
        raise _fail(token, f"unknown variable {name!r}")

    def n_list_lit(self, node: lark.Tree[Any]) -> _Code:
        if not node.children:
            return _Code("[]", "list")
        elements = [self.expr(e) for e in self.subtrees(node.children[0])]
        return _Code("[" + ", ".join(e.src for e in elements) + "]", "list")

    def n_map_lit(self, node: lark.Tree[Any]) -> _Code:
        if not node.children:
            return _Code("{}", "map")
        parts = [self.expr(e) for e in self.subtrees(node.children[0])]
        pairs = ", ".join(
            f"({k.src}, {v.src})" for k, v in zip(parts[0::2], parts[1::2], strict=True)
        )
        return _Code(f"_make_map(({pairs},))", "map")

    def n_literal(self, node: lark.Tree[Any]) -> _Code:
        token = node.children[0]
        if not isinstance(token, lark.Token):
            raise _fail(node, "bad literal")
        value = self._literal_value(token)
        kind = token.type
        if kind == "BOOL_LIT":
            return _Code(repr(value), "bool")
        if kind == "NULL_LIT":
            return _Code("None", "null")
        if kind == "INT_LIT":
            return _Code(repr(int(value)), "int")
        if kind == "UINT_LIT":
            return _Code(self.const(value), "uint")
        if kind == "FLOAT_LIT":
            return _Code(self.const(value), "double")
        if kind == "BYTES_LIT":
            return _Code(self.const(value), "bytes")
        return _Code(self.const(value), "string")

    def _literal_value(self, token: lark.Token) -> Any:
        text = str(token)
        kind = token.type
        if kind == "BOOL_LIT":
            return text == "true"
        if kind == "NULL_LIT":
            return None
        if kind in ("INT_LIT", "UINT_LIT"):
            digits = text[:-1] if kind == "UINT_LIT" else text
            negative = digits.startswith("-")
            digits = digits.lstrip("-")
            base = 16 if digits[:2].lower() == "0x" else 10
            number = int(digits[2:] if base == 16 else digits, base)
            number = -number if negative else number
            low, high = (rt.INT_MIN, rt.INT_MAX) if kind == "INT_LIT" else (0, rt.UINT_MAX)
            if not low <= number <= high:
                raise _fail(token, f"integer literal {text} out of range")
            return number if kind == "INT_LIT" else rt.CelUint(number)
        if kind == "FLOAT_LIT":
            value = float(text)
            if math.isinf(value):
                raise _fail(token, f"double literal {text} out of range")
            return value
        if kind in ("STRING_LIT", "MLSTRING_LIT"):
            return decode_string(text, token, as_bytes=False)
        if kind == "BYTES_LIT":
            return decode_string(text[1:], token, as_bytes=True)
        raise _fail(token, f"unsupported literal {text!r}")


class _Indent:
    __slots__ = ("gen",)

    def __init__(self, gen: _Generator) -> None:
        self.gen = gen

    def __enter__(self) -> None:
        self.gen.depth += 1

    def __exit__(self, *exc: object) -> None:
        self.gen.depth -= 1


_SIMPLE_ESCAPES = {
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "n": "\n",
    "r": "\r",
    "t": "\t",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
    "`": "`",
    "?": "?",
}
_ESCAPE = re.compile(
    r"\\(?:([abfnrtv\\'\"`?])|x([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})"
    r"|([0-3][0-7]{2})|(.))",
    re.DOTALL,
)


def decode_string(text: str, token: Any, *, as_bytes: bool) -> Any:
    """A CEL string (or bytes, without its ``b``) literal's value, escapes and all."""
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = 3 if text[:3] in ('"""', "'''") else 1
    body = text[quote:-quote]
    if raw:
        return body.encode("utf-8") if as_bytes else body
    parts: list[bytes] = []
    pos = 0

    def pieces() -> Iterator[re.Match[str]]:
        return _ESCAPE.finditer(body)

    for m in pieces():
        parts.append(body[pos : m.start()].encode("utf-8"))
        pos = m.end()
        simple, hex2, uni4, uni8, octal, bad = m.groups()
        if bad is not None:
            raise _fail(token, f"invalid escape \\{bad} in string literal")
        if simple is not None:
            parts.append(_SIMPLE_ESCAPES[simple].encode("utf-8"))
        elif hex2 is not None or octal is not None:
            code = int(hex2, 16) if hex2 is not None else int(octal, 8)
            parts.append(bytes([code]) if as_bytes else chr(code).encode("utf-8"))
        else:
            code = int(uni4 or uni8, 16)
            if as_bytes or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _fail(token, "invalid unicode escape in literal")
            parts.append(chr(code).encode("utf-8"))
    parts.append(body[pos:].encode("utf-8"))
    data = b"".join(parts)
    return data if as_bytes else data.decode("utf-8")
