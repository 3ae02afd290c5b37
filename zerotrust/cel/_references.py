"""Where a CEL text reads a policy variable (``variables.<name>``), found on its syntax tree.

The policy layer inlines each reference at load, so it needs exact spans: a text
search would also match inside string literals and after a dot (``x.variables.y``).
"""

from __future__ import annotations

from typing import Any

import attrs
import lark
from lark.exceptions import LarkError

from zerotrust.cel._backend import VARIABLES, CelCompileError
from zerotrust.cel._syntax import _MACROS, _ident, _parser, _where

__all__ = ["NAMESPACE", "VariableReference", "variable_references"]

#: The name conditions read policy variables through.
NAMESPACE = "variables"


@attrs.frozen
class VariableReference:
    """One ``variables.<name>``: ``start``/``end`` are offsets in the text, ``line`` and
    ``column`` (1-based) where it starts, ``rebound`` the top-level names a macro around
    it binds to something else (inlining an expression that reads them there would
    change what it reads)."""

    name: str
    start: int
    end: int
    line: int
    column: int
    rebound: frozenset[str] = frozenset()


def variable_references(
    source: str, namespace: str = NAMESPACE, what: str = "a policy variable"
) -> tuple[VariableReference, ...]:
    """Every ``<namespace>.<name>`` in ``source`` (``variables.<name>`` by default), in
    text order; ``what`` names such a reference in the error below.

    A text that does not parse gives ``()``: compiling it reports the syntax error.
    ``namespace`` read any other way (alone, indexed, called) is a
    :class:`CelCompileError` at its position.
    """
    if namespace not in source:
        return ()
    try:
        tree = _parser().parse(source)
    except (LarkError, RecursionError):
        return ()
    found: list[VariableReference] = []
    stack: list[tuple[Any, frozenset[str]]] = [(tree, frozenset())]
    while stack:
        node, bound = stack.pop()
        if not isinstance(node, lark.Tree):
            continue
        data = node.data
        if data == "member_dot" and _ident(node.children[0]) == namespace:
            meta = node.meta
            found.append(
                VariableReference(
                    str(node.children[1]),
                    meta.start_pos,
                    meta.end_pos,
                    meta.line,
                    meta.column,
                    bound & VARIABLES,
                )
            )
            continue
        if data in ("ident", "dot_ident") and str(node.children[0]) == namespace:
            line, column = _where(node.children[0])
            raise CelCompileError(f"read {what} as {namespace}.<name>", line, column)
        if data == "member_dot_arg" and str(node.children[1]) in _MACROS:
            args = node.children[2] if len(node.children) > 2 else None
            exprs = args.children if isinstance(args, lark.Tree) else []
            var = _ident(exprs[0]) if exprs else None
            if var == namespace:
                line, column = _where(exprs[0])
                raise CelCompileError(
                    f"a macro's loop variable cannot be named {namespace}: conditions read "
                    f"{what} as {namespace}.<name>, so rename the loop variable",
                    line,
                    column,
                )
            stack.append((node.children[0], bound))
            inner = bound | {var} if var is not None else bound
            stack.extend((e, inner) for e in exprs[1:])
            continue
        stack.extend((c, bound) for c in node.children)
    found.sort(key=lambda r: r.start)
    return tuple(found)
