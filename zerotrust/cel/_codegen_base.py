"""The code generator's building blocks: emitting lines, dispatching on nodes, literals.

:class:`_Emitter` holds what one generation run accumulates (source lines, constants,
temporaries, macro variables in scope) and walks the tree by dispatching each node to an
``n_<rule>`` method, which the subclasses in :mod:`._codegen_calls` and
:mod:`._compiler_codegen` provide. Literals are decoded here, escapes and all, so a
policy's strings reach the generated code only as constants.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import lark

from zerotrust._describe import quote
from zerotrust.cel import _compiler_runtime as rt
from zerotrust.cel._backend import CelCompileError
from zerotrust.cel.functions import LITERAL_CHECKS

__all__ = [
    "INT_STANDIN",
    "MAX_BLOCKS",
    "MAX_NESTING",
    "CelLiteralError",
    "Program",
    "decode_string",
    "literal_value",
]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_CONST = re.compile(r"k[0-9]+")
# Passthrough names that wrap: single-child nodes the generator walks through.
_WRAPPERS = frozenset({"member", "primary", "paren_expr"})


class CelLiteralError(CelCompileError):
    """A literal argument that would fail on every evaluation (bad regex, timestamp...)."""


#: Integer literals are written into the generated text as stand-ins, ``INT_STANDIN + i``
#: for the ``i``-th literal (no CEL int is that large), and the compiled code object's
#: constants are then swapped for the values (see ``_compiler``). Conditions that differ
#: only in their integers (``records > 1000``, ``records > 5000``) so share one Python
#: ``compile()``, yet each gets a code object of its own with its integers as constants.
INT_STANDIN = 2**70


class Program:
    """Generated source for one expression, the constants it closes over and its integers.

    ``body`` and ``result`` hold :data:`INT_STANDIN` stand-ins for the integer literals,
    whose values are ``ints``, in order.
    """

    __slots__ = ("body", "constants", "ints", "result")

    def __init__(self, body: list[str], result: str, constants: list[Any], ints: list[int]) -> None:
        self.body = body
        self.result = result
        self.constants = constants
        self.ints = ints


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


#: How deeply operations may nest inside each other (``f(g(h(x)))``, ``a + b + c``: each
#: level is one more pair of parentheses in the generated Python, whose parser stops at
#: 200). cel-spec's conformance tests nest 32 deep; a policy needs far fewer.
MAX_NESTING = 60

#: How deeply ``&&``/``||`` (one level each), ``exists_one``/``filter``/``map`` (one) and
#: ``all``/``exists`` (two) may nest inside each other: each level is a ``try`` or ``for``
#: block in the generated function, and Python allows 20 (one is the function's own).
MAX_BLOCKS = 17


class _Emitter:
    """One generation run: the lines and constants so far, and dispatch to ``n_<rule>``.

    The limits :data:`MAX_NESTING` and :data:`MAX_BLOCKS` are checked here, as the code is
    generated, so a condition beyond them is a diagnostic at its own position, never a
    failure of Python's compiler on text the policy author never wrote.
    """

    def __init__(
        self,
        variables: frozenset[str],
        extras: Mapping[str, tuple[Callable[..., bool], int]],
        checks: Mapping[str, tuple[Callable[[Any], Any] | None, ...]] = LITERAL_CHECKS,
    ) -> None:
        self.variables = variables
        self.extras = extras
        self.checks = checks
        self.lines: list[str] = []
        self.depth = 1
        self.nesting = 0
        self.blocks = 0
        self.constants: list[Any] = []
        self.ints: list[int] = []
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

    def block(self, at: lark.Tree[Any] | None = None) -> _Indent:
        """An indented block; ``at``: it is a ``try``/``for`` block opened for that node."""
        if at is not None and self.blocks >= MAX_BLOCKS:
            raise _fail(
                at,
                "condition nested too deeply: &&, || and macros inside each other, all and"
                f" exists counting twice (limit {MAX_BLOCKS} levels)",
            )
        return _Indent(self, counted=at is not None)

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
        if self.nesting >= MAX_NESTING:
            raise _fail(
                node,
                "condition nested too deeply: operations inside each other"
                f" (limit {MAX_NESTING} levels)",
            )
        self.nesting += 1
        result: _Code = method(node)
        self.nesting -= 1
        return result

    def subtrees(self, node: lark.Tree[Any]) -> list[lark.Tree[Any]]:
        return [c for c in node.children if isinstance(c, lark.Tree)]

    # --- guarded evaluation ---------------------------------------------------------------

    def _guarded(self, node: lark.Tree[Any], target: str) -> None:
        """``target = node`` as a bool, or the error it raised (without traceback)."""
        self.emit("try:")
        with self.block(node):
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

    # --- literals -------------------------------------------------------------------------

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
            self.ints.append(int(value))
            return _Code(str(INT_STANDIN + len(self.ints) - 1), "int")
        if kind == "UINT_LIT":
            return _Code(self.const(value), "uint")
        if kind == "FLOAT_LIT":
            return _Code(self.const(value), "double")
        if kind == "BYTES_LIT":
            return _Code(self.const(value), "bytes")
        return _Code(self.const(value), "string")

    def _literal_value(self, token: lark.Token) -> Any:
        return literal_value(token)


class _Indent:
    __slots__ = ("counted", "gen")

    def __init__(self, gen: _Emitter, *, counted: bool) -> None:
        self.gen = gen
        self.counted = counted

    def __enter__(self) -> None:
        self.gen.depth += 1
        self.gen.blocks += self.counted

    def __exit__(self, *exc: object) -> None:
        self.gen.depth -= 1
        self.gen.blocks -= self.counted


# The longest decimal / hexadecimal spelling of a 64-bit integer, leading zeros aside:
# longer digit strings are out of range without converting them (Python refuses to
# convert more than 4,300 digits, and would take quadratic time below that).
_MAX_DIGITS = {10: 20, 16: 16}


def literal_value(token: lark.Token) -> Any:
    """The value of a literal token; a :class:`CelCompileError` at the token if it has none.

    Integers must fit int64 (``uint``: uint64) and doubles must be finite, as cel-go
    requires of literals.
    """
    text = str(token)
    kind = token.type
    if kind == "BOOL_LIT":
        return text == "true"
    if kind == "NULL_LIT":
        return None
    if kind in ("INT_LIT", "UINT_LIT"):
        return _integer(text, token, unsigned=kind == "UINT_LIT")
    if kind == "FLOAT_LIT":
        value = float(text)
        if math.isinf(value):
            raise _fail(token, f"double literal {_short(text)} out of range")
        return value
    if kind == "STRING_LIT":
        return decode_string(text, token, as_bytes=False)
    if kind == "BYTES_LIT":
        return decode_string(text[1:], token, as_bytes=True)
    raise _fail(token, f"unsupported literal {_short(text)}")


def _integer(text: str, token: lark.Token, *, unsigned: bool) -> Any:
    digits = text[:-1] if unsigned else text
    negative = digits.startswith("-")
    digits = digits.lstrip("-")
    base = 16 if digits[:2] == "0x" else 10
    digits = digits[2:] if base == 16 else digits
    kind = "unsigned integer" if unsigned else "integer"
    if len(digits.lstrip("0")) > _MAX_DIGITS[base]:
        raise _fail(token, f"{kind} literal {_short(text)} out of 64-bit range")
    number = int(digits, base)
    number = -number if negative else number
    low, high = (0, rt.UINT_MAX) if unsigned else (rt.INT_MIN, rt.INT_MAX)
    if not low <= number <= high:
        raise _fail(token, f"{kind} literal {_short(text)} out of 64-bit range")
    return rt.CelUint(number) if unsigned else number


def _short(text: str) -> str:
    """A literal as a message quotes it: long ones cut short."""
    return quote(text)


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
    r"\\(?:([abfnrtv\\'\"`?])|[xX]([0-9a-fA-F]{2})|u([0-9a-fA-F]{4})|U([0-9a-fA-F]{8})"
    r"|([0-3][0-7]{2})|(.))",
    re.DOTALL,
)


def decode_string(text: str, token: Any, *, as_bytes: bool) -> Any:
    """A CEL string (or bytes, without its ``b``) literal's value, escapes and all.

    The escapes are cel-spec's (``doc/langdef.md``, "String and Bytes Values"): ``\\a``
    ``\\b`` ``\\f`` ``\\n`` ``\\r`` ``\\t`` ``\\v`` ``\\\\`` ``\\?`` ``\\"`` ``\\'`` ``\\```,
    ``\\xHH`` / ``\\XHH``, three octal digits up to ``\\377``, and in strings only
    ``\\uHHHH`` / ``\\UHHHHHHHH`` (not a surrogate). Anything else is an error.
    """
    raw = text[:1] in "rR"
    if raw:
        text = text[1:]
    quote = 3 if text[:3] in ('"""', "'''") else 1
    body = text[quote:-quote]
    try:
        if raw:
            return body.encode("utf-8") if as_bytes else body
        data = b"".join(_pieces(body, token, as_bytes=as_bytes))
        return data if as_bytes else data.decode("utf-8")
    except UnicodeError:
        raise _fail(token, "string literal holds an unpaired surrogate") from None


def _pieces(body: str, token: Any, *, as_bytes: bool) -> Iterator[bytes]:
    pos = 0
    for m in _ESCAPE.finditer(body):
        yield body[pos : m.start()].encode("utf-8")
        pos = m.end()
        simple, hex2, uni4, uni8, octal, bad = m.groups()
        if bad is not None:
            raise _fail(token, f"invalid escape {chr(92) + bad!r} in string literal")
        if simple is not None:
            yield _SIMPLE_ESCAPES[simple].encode("utf-8")
        elif hex2 is not None or octal is not None:
            code = int(hex2, 16) if hex2 is not None else int(octal, 8)
            yield bytes([code]) if as_bytes else chr(code).encode("utf-8")
        else:
            code = int(uni4 or uni8, 16)
            if as_bytes or code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                raise _fail(token, "invalid unicode escape in literal")
            yield chr(code).encode("utf-8")
    yield body[pos:].encode("utf-8")
