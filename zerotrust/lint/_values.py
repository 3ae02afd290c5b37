"""The values the encoder works with, and the helpers that read or build z3 terms.

A boolean is a :class:`Tri`; an int, double or string a :class:`Val` (meaningful where
``ok`` holds, certainly an error where ``err`` does); an attribute path a :class:`Path`,
typed where it is used; a list literal a :class:`ListValue`.
"""

from __future__ import annotations

import fractions
import math
from typing import Any

import attrs
import lark
import z3  # type: ignore[import-untyped, import-not-found, unused-ignore]

from zerotrust.cel._codegen_base import literal_value

__all__ = [
    "DOUBLE",
    "FALSE",
    "INT_MAX",
    "INT_MIN",
    "TRUE",
    "ListValue",
    "Path",
    "Tri",
    "Val",
    "bool_literal",
    "double_of",
    "is_literal",
    "kind_of",
    "literal_text",
    "real_of",
    "relation",
    "string_of",
    "string_val",
    "text_key",
]

INT_MIN, INT_MAX = -(2**63), 2**63 - 1
DOUBLE = z3.Float64()


@attrs.frozen(eq=False)
class Tri:
    """A CEL boolean: ``t`` it is true, ``f`` it is false, neither it is an error."""

    t: Any
    f: Any

    @property
    def error(self) -> Any:
        return z3.And(z3.Not(self.t), z3.Not(self.f))

    @property
    def matches(self) -> Any:
        """When a deny or step-up matches: true, or an error (fail closed)."""
        return z3.Not(self.f)


@attrs.frozen(eq=False)
class Val:
    """A non-boolean value of a known kind, meaningful only where ``ok`` holds."""

    kind: str
    expr: Any
    ok: Any
    #: Where evaluating it certainly errors (a missing attribute): never where ``ok``.
    err: Any = attrs.field(factory=lambda: z3.BoolVal(False))


@attrs.frozen
class Path:
    """An attribute path (``resource.properties.owner_dept``), typed where it is used."""

    parts: tuple[str, ...]


@attrs.frozen
class ListValue:
    items: tuple[Any, ...]


TRUE = Tri(z3.BoolVal(True), z3.BoolVal(False))
FALSE = Tri(z3.BoolVal(False), z3.BoolVal(True))


def text_key(node: Any) -> str:
    """Canonical text of a subtree (no positions): equal for equal expressions."""
    if isinstance(node, lark.Tree):
        return f"{node.data}(" + ",".join(text_key(c) for c in node.children) + ")"
    return repr(None if node is None else str(node))


def literal_text(node: Any) -> str | None:
    """The string a literal-only expression node is (``["key"]``), else None."""
    while isinstance(node, lark.Tree) and len(node.children) == 1:
        node = node.children[0]
    if isinstance(node, lark.Token) and node.type == "STRING_LIT":
        try:
            value = literal_value(node)
        except Exception:
            return None
        return value if isinstance(value, str) else None
    return None


def is_literal(value: Any) -> bool:
    """A constant that never errors (a literal), not a computed value."""
    return isinstance(value, Val) and z3.is_true(value.ok) and z3.is_false(value.err)


def bool_literal(value: Any) -> Any:
    """A ``true``/``false`` literal as a bool value, so a path compared with it is typed."""
    if value is TRUE or value is FALSE:
        return Val("bool", z3.BoolVal(value is TRUE), z3.BoolVal(True))
    return value


def real_of(value: Any) -> Any | None:
    """A finite double literal as the exact real it is."""
    number = float(double_of(value))
    if not math.isfinite(number):
        return None
    exact = fractions.Fraction(number)
    return z3.RealVal(f"{exact.numerator}/{exact.denominator}")


def double_of(value: Any) -> float:
    """The Python float of a z3 double value."""
    if value.isNaN():
        return math.nan
    if value.isInf():
        return -math.inf if value.isNegative() else math.inf
    real = z3.simplify(z3.fpToReal(value))
    return float(fractions.Fraction(real.numerator_as_long(), real.denominator_as_long()))


def kind_of(left: Any, right: Any) -> str | None:
    """The kind both operands are read at: that of the one that has a kind."""
    kinds = {v.kind for v in (left, right) if isinstance(v, Val)}
    if len(kinds) != 1:
        return None
    (kind,) = kinds
    other = right if isinstance(left, Val) and left.kind == kind else left
    if isinstance(other, (Val, Path)):
        return kind
    return None


def relation(op: str, kind: str, a: Any, b: Any) -> Any:
    if kind == "double":
        double = {
            "relation_lt": z3.fpLT,
            "relation_le": z3.fpLEQ,
            "relation_gt": z3.fpGT,
            "relation_ge": z3.fpGEQ,
            "relation_eq": z3.fpEQ,
        }
        if op == "relation_ne":
            return z3.Not(z3.fpEQ(a, b))
        return double[op](a, b)
    if op == "relation_eq":
        return a == b
    if op == "relation_ne":
        return a != b
    if kind == "bool":
        return z3.BoolVal(False)  # not reached: bools are only compared for equality
    return {
        "relation_lt": lambda: a < b,
        "relation_le": lambda: a <= b,
        "relation_gt": lambda: a > b,
        "relation_ge": lambda: a >= b,
    }[op]()


def string_val(text: str) -> Any:
    """A z3 string of exactly ``text``: z3 reads ``\\u{...}`` escapes in its literals, so
    every character but printable ASCII (the backslash included) is written as one."""
    return z3.StringVal(
        "".join(c if " " <= c <= "~" and c != "\\" else f"\\u{{{ord(c):x}}}" for c in text)
    )


def string_of(model: Any, expr: Any) -> str:
    """The string ``expr`` has in ``model``, read character by character (z3's printed
    form is ambiguous: it leaves a backslash unescaped)."""
    n = model.eval(z3.Length(expr), model_completion=True).as_long()
    codes = (
        model.eval(z3.StrToCode(z3.SubString(expr, i, 1)), model_completion=True).as_long()
        for i in range(n)
    )
    return "".join(chr(c) for c in codes)
