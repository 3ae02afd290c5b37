"""Generating member access, function and method calls, and the macros.

``a.f``, ``a[k]``, ``has()``, conversions, ``size()``, the string and regex functions,
timestamp accessors, zerotrust's extra functions and ``all``/``exists``/``exists_one``/
``map``/``filter``. Arguments that are literals (a regex, a time zone, a timestamp) are
checked and compiled once here, so a bad one is a :class:`CelLiteralError` at load.
"""

from __future__ import annotations

import ast
import string
from typing import Any

import lark

from zerotrust.cel import _compiler_runtime as rt
from zerotrust.cel._codegen_base import (
    _CONST,
    _IDENT,
    _WRAPPERS,
    CelLiteralError,
    _Code,
    _Emitter,
    _fail,
    _where,
)
from zerotrust.cel._syntax import _ident, unwrap
from zerotrust.cel.functions import SET_FUNCTIONS

__all__: list[str] = []

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_NAME_START = frozenset(string.ascii_letters + "_")
#: What follows the dot in a qualified name (``IP`` in ``net.IP``).
_MEMBERS = frozenset(
    name.rpartition(".")[2] for name in (*rt.QUALIFIED_TYPES, *rt.QUALIFIED_FUNCTIONS)
)
#: Conversions of a literal string computed at load.
_FOLDED: dict[str, Any] = {
    "timestamp": rt.parse_timestamp,
    "duration": rt.parse_duration,
    "ip": rt.to_ip,
    "cidr": rt.to_cidr,
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


class _CallGenerator(_Emitter):
    """Members, calls and macros; the operators are :class:`._compiler_codegen._Generator`'s."""

    # --- members --------------------------------------------------------------------------

    def _field(self, token: Any) -> str:
        """A field name, as a closure constant: conditions that differ only in the fields
        they read generate the same text, so they share one code object (one ``compile()``
        per shape, not per condition)."""
        name = str(token)
        if not _IDENT.fullmatch(name):
            raise _fail(token, f"invalid field name {name!r}")
        return self.const(name)

    def _qualifier(self, target_node: Any, field: Any, names: Any) -> str | None:
        """``net.IP``, ``ip.isCanonical``: the qualified name if ``target_node`` is a bare
        name that is no variable and ``name.field`` is in ``names``, else None."""
        if not isinstance(target_node, lark.Tree) or field not in _MEMBERS:
            return None  # the common case, a field: no unwrapping the target
        qualifier = _ident(target_node)
        if qualifier is None or qualifier in self.scope or qualifier in self.variables:
            return None
        qualified = f"{qualifier}.{field}"
        return qualified if qualified in names else None

    def n_member_dot(self, node: lark.Tree[Any]) -> _Code:
        target_node, token = node.children
        qualified = self._qualifier(target_node, token, rt.QUALIFIED_TYPES)
        if qualified is not None:
            return _Code(self.const(rt.QUALIFIED_TYPES[qualified]), "type")
        target = self.expr(target_node)
        field = self._field(token)
        if target.kind in (None, "map") and not _is_display(target.src):
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
        qualified = self._qualifier(target_node, name, rt.QUALIFIED_FUNCTIONS)
        if qualified is not None:
            fn, arity = rt.QUALIFIED_FUNCTIONS[qualified]
            if len(args) != arity:
                raise _fail(token, f"{qualified}() takes {arity} argument(s), got {len(args)}")
            srcs = ", ".join(self.expr(a).src for a in args)
            return _Code(f"{self.const(fn)}({srcs})", None)
        if name in self.extras or name in SET_FUNCTIONS:
            call = ", ".join(_spelling(n) or "..." for n in (target_node, *args))
            raise _fail(token, f"{name}() is a function, not a method: write {name}({call})")
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
        self._check_literal_args(token, name, arg_nodes)
        return self._call(token, name, [self.expr(a) for a in arg_nodes], method=False)

    def _check_literal_args(self, token: Any, name: str, arg_nodes: list[lark.Tree[Any]]) -> None:
        """An extra function's literal arguments (``ip_in_cidr(x, "10.0.0.0/8")``), at load."""
        for check, node in zip(self.checks.get(name, ()), arg_nodes, strict=False):
            if check is None:
                continue
            found, value = self._literal_arg(node)
            if not found:
                continue
            try:
                check(value)
            except ValueError as exc:
                line, column = _where(token)
                raise CelLiteralError(f"{name}(): {exc}", line, column) from None

    def _literal_arg(self, node: lark.Tree[Any]) -> tuple[bool, Any]:
        """Whether an argument is written as a literal, and its value for a check: a
        scalar as itself, a list of scalars as the list, any other list as an empty one and
        a map as an empty map (their type is what a check can judge)."""
        inner = unwrap(node)
        if inner.data == "literal" and isinstance(inner.children[0], lark.Token):
            return True, self._literal_value(inner.children[0])
        if inner.data == "map_lit":
            return True, {}
        if inner.data == "list_lit":
            values = self._constant_list(node)
            return True, [] if values is None else values
        return False, None

    n_dot_ident_arg = n_ident_arg

    def _fold(self, token: Any, name: str, arg_nodes: list[lark.Tree[Any]]) -> _Code | None:
        """``timestamp('...')``, ``duration('...')``, ``ip('...')``, ``cidr('...')`` of a
        literal: computed once, at load, where a bad one is a diagnostic."""
        convert = _FOLDED.get(name)
        if convert is None or len(arg_nodes) != 1:
            return None
        text = self._string_literal(arg_nodes[0])
        if text is None:
            return None
        try:
            value = convert(text)
        except rt.CelError as exc:
            line, column = _where(token)
            raise CelLiteralError(str(exc), line, column) from None
        return _Code(self.const(value), name if name in ("timestamp", "duration") else None)

    def _string_literal(self, node: lark.Tree[Any]) -> str | None:
        inner = unwrap(node)
        if inner.data != "literal":
            return None
        token = inner.children[0]
        if isinstance(token, lark.Token) and token.type == "STRING_LIT":
            value = self._literal_value(token)
            return value if isinstance(value, str) else None
        return None

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
            inner = unwrap(element)
            if inner.data != "literal":
                return None
            token = inner.children[0]
            if not isinstance(token, lark.Token) or token.type not in ("STRING_LIT", "INT_LIT"):
                return None
            values.append(self._literal_value(token))
        return values

    def _has(self, node: lark.Tree[Any], arg_nodes: list[lark.Tree[Any]]) -> _Code:
        inner = unwrap(arg_nodes[0]) if len(arg_nodes) == 1 else None
        if inner is None or inner.data != "member_dot":
            at = arg_nodes[0] if arg_nodes else node  # (at what is not a field selection)
            raise _fail(at, "has() takes a field selection, like has(resource.owner)")
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
        network = rt.NETWORK_METHODS if method else rt.NETWORK_FUNCTIONS
        if name in network and count == network[name][1]:
            return _Code(f"{self.const(network[name][0])}({srcs})", None)
        if name in self.extras and not method:
            fn, arity = self.extras[name]
            if count != arity:
                raise _fail(token, f"{name}() takes {arity} argument(s), got {count}")
            return _Code(f"_call_extra({self.const(fn)}, {name!r}, {srcs})", "bool")
        if name in SET_FUNCTIONS and not method:
            raise _fail(token, f"{name}(): {SET_FUNCTIONS[name]}")
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
        var = _ident(args[0]) if args else None
        if var is None:
            raise _fail(node, f"{name}() takes a variable name and an expression")
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
                with self.block(node):
                    pred = self.expr(args[1])
                    test = pred.src if pred.kind == "bool" else f"_truth({pred.src})"
                    self.emit(f"if {test}:")
                    with self.block():
                        self.emit(f"{result} += 1")
                return _Code(f"({result} == 1)", "bool")
            self.emit(f"{result} = []")
            self.emit(f"for {local} in {items}:")
            with self.block(node):
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
        with self.block(pred_node):
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


def _is_display(src: str) -> bool:
    """Whether generated ``src`` is a literal or a display (``1``, ``'a'``, ``[1]``), which
    Python's compiler would warn about when subscripted (``1['f']``: a SyntaxWarning,
    an error under ``-W error``): those go through the runtime's ``_select`` instead.

    Most targets are a name, call or subscript (``b['subject']``, ``t3``, ``_index(...)``);
    they start with a name that is no keyword constant, which no display does, so they
    skip ``ast.parse`` (a tenth of a load's code generation otherwise)."""
    if src[:1] in _NAME_START and not src.startswith(("True", "False", "None")):
        return False
    try:
        body = ast.parse(src, mode="eval").body
    except SyntaxError:
        return False
    return isinstance(body, ast.Constant | ast.List | ast.Tuple | ast.Dict | ast.Set)


def _spelling(node: lark.Tree[Any]) -> str | None:
    """How a simple argument is written (``subject.id``, ``"support"``), else None."""
    inner = unwrap(node)
    if inner.data == "member_dot":
        target = _spelling(inner.children[0])
        return None if target is None else f"{target}.{inner.children[1]}"
    token = inner.children[0] if inner.data in ("ident", "literal") else None
    return str(token) if isinstance(token, lark.Token) else None
