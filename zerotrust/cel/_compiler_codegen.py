"""Turning a parsed CEL tree into the source of one Python function.

Nothing from the policy text is pasted into the source except variable names (through
``repr``) and integers (through ``repr(int)``). Field names, strings, bytes, doubles,
regular expressions, time zones and list constants travel in a tuple of constants bound
as closure variables, so conditions differing only in those share one code object. All Python
names in the source are the generator's own (``t3``, ``k0``, ``_add``), so a policy
cannot name a Python object.

Strict operators compose as plain expressions: an error is a raised exception that
passes through. Only ``&&``, ``||``, ``?:`` and the macros ``all``/``exists`` look at
errors, so only they emit ``try`` blocks (free in CPython 3.11 until something raises).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import lark

from zerotrust.cel import _compiler_runtime as rt
from zerotrust.cel._codegen_base import (
    _CONST,
    _IDENT,
    CelLiteralError,
    Program,
    _Code,
    _fail,
    decode_string,
)
from zerotrust.cel._codegen_calls import _CallGenerator
from zerotrust.cel.functions import LITERAL_CHECKS

__all__ = ["HELPERS", "CelLiteralError", "Program", "decode_string", "generate"]

_INLINE_CLASS = {"int": "int", "double": "float", "string": "str"}
_PY_LITERAL_OR_CONST = re.compile(r"-?[0-9]+|k[0-9]+")
_PY_LITERAL = re.compile(r"-?[0-9]+|True|False|None|\[\]|\{\}")
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


def generate(
    tree: lark.Tree[Any],
    variables: frozenset[str],
    extras: Mapping[str, tuple[Callable[..., bool], int]],
    checks: Mapping[str, tuple[Callable[[Any], Any] | None, ...]] = LITERAL_CHECKS,
) -> Program:
    """Generate the function body for ``tree``; ``variables`` are the names it may read,
    ``extras`` the functions it may call and ``checks`` their literal arguments' checks."""
    gen = _Generator(variables, extras, checks)
    code = gen.expr(tree)
    return Program(gen.lines, code.src, gen.constants, gen.ints)


class _Generator(_CallGenerator):
    """The whole generator: logic, relations, arithmetic and names, over calls and macros."""

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
