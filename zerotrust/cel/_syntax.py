"""Parsing CEL with cel-python's own grammar, plus the checks a policy author wants at load.

We build our own Lark parser from celpy's ``cel.lark`` rather than using
``celpy.Environment``: the environment changes ``sys.setrecursionlimit`` and shares
one parser through a class attribute, both visible to the host application.
"""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path
from typing import Any

import celpy.celparser
import lark
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from zerotrust.cel._backend import VARIABLES, CelCompileError

__all__ = ["Parsed", "parse"]

MAX_SOURCE_CHARS = 20_000
MAX_TREE_DEPTH = 400

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
# Names CEL resolves as values besides variables: the type identifiers.
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_NOT_BOOLEAN = {
    "addition_add": "an addition",
    "addition_sub": "a subtraction",
    "multiplication_mul": "a multiplication",
    "multiplication_div": "a division",
    "multiplication_mod": "a remainder",
    "unary_neg": "a negation",
    "list_lit": "a list",
    "map_lit": "a map",
}


@functools.cache
def _parser() -> lark.Lark:
    """One parser per process; Lark's LALR parser keeps no state between parses."""
    grammar = (Path(celpy.celparser.__file__).parent / "cel.lark").read_text()
    return lark.Lark(
        grammar,
        parser="lalr",
        start="expr",
        g_regex_flags=re.M,
        lexer_callbacks={"IDENT": celpy.celparser.CELParser.ambiguous_literals},
        propagate_positions=True,
        maybe_placeholders=False,
        priority="invert",
    )


class Parsed:
    """A parsed, checked expression: the tree and the top-level variables it reads."""

    __slots__ = ("source", "tree", "variables")

    def __init__(self, source: str, tree: lark.Tree[Any], variables: frozenset[str]) -> None:
        self.source = source
        self.tree = tree
        self.variables = variables


def parse(source: str, functions: frozenset[str]) -> Parsed:
    """Parse and check ``source``; ``functions`` are the callable names the backend knows."""
    if not isinstance(source, str):
        raise CelCompileError(f"a condition must be a string, not {type(source).__name__}")
    if not source.strip():
        raise CelCompileError("empty condition")
    if len(source) > MAX_SOURCE_CHARS:
        raise CelCompileError(f"condition longer than {MAX_SOURCE_CHARS} characters")
    try:
        tree = _parser().parse(source)
    except UnexpectedCharacters as exc:
        raise CelCompileError(
            f"syntax error: unexpected character {_char_at(source, exc.pos_in_stream)}",
            exc.line,
            exc.column,
        ) from exc
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            lines = source.split("\n")
            raise CelCompileError(
                "syntax error: unexpected end of expression", len(lines), len(lines[-1]) + 1
            ) from exc
        raise CelCompileError(
            f"syntax error: unexpected {str(exc.token)!r}", _pos(exc.line, 1), _pos(exc.column, 1)
        ) from exc
    except UnexpectedEOF as exc:
        raise CelCompileError("syntax error: unexpected end of expression") from exc
    except LarkError as exc:
        raise CelCompileError(f"syntax error: {exc}") from exc
    except RecursionError as exc:
        raise CelCompileError("expression nested too deeply") from exc
    _check_depth(tree)
    _check_boolean_root(tree)
    variables = _check_names(tree, functions)
    return Parsed(source, tree, variables)


def _char_at(source: str, index: Any) -> str:
    if isinstance(index, int) and 0 <= index < len(source):
        return repr(source[index])
    return "here"


def _pos(value: Any, default: int) -> int:
    return value if isinstance(value, int) and value > 0 else default


def _where(node: lark.Tree[Any] | lark.Token) -> tuple[int, int]:
    if isinstance(node, lark.Token):
        return _pos(node.line, 1), _pos(node.column, 1)
    meta = node.meta
    if getattr(meta, "empty", True):
        return 1, 1
    return _pos(meta.line, 1), _pos(meta.column, 1)


def _check_depth(tree: lark.Tree[Any]) -> None:
    stack: list[tuple[lark.Tree[Any], int]] = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_TREE_DEPTH:
            line, column = _where(node)
            raise CelCompileError("expression nested too deeply", line, column)
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))


def _check_boolean_root(tree: lark.Tree[Any]) -> None:
    """Refuse conditions that can never be a boolean: constants, arithmetic, literals."""
    node = tree
    while node.data not in _NOT_BOOLEAN:
        subtrees = [c for c in node.children if isinstance(c, lark.Tree)]
        if subtrees and subtrees[0].data in _NOT_BOOLEAN and len(node.children) > 1:
            node = subtrees[0]  # an operator node holds the left operand; its parent the right
            break
        if len(node.children) != 1 or not subtrees:
            break
        node = subtrees[0]
    line, column = _where(node)
    if node.data == "literal":
        token = node.children[0]
        if isinstance(token, lark.Token) and token.type != "BOOL_LIT":
            raise CelCompileError(
                f"condition is the constant {token!s}, not a boolean", line, column
            )
    elif node.data in _NOT_BOOLEAN:
        raise CelCompileError(
            f"condition is {_NOT_BOOLEAN[node.data]}, never a boolean", line, column
        )


def _ident(expr: lark.Tree[Any]) -> str | None:
    """The bare identifier an ``expr`` consists of, if it is one (macro variables)."""
    node = expr
    while isinstance(node, lark.Tree) and len(node.children) == 1:
        child = node.children[0]
        if node.data == "ident" and isinstance(child, lark.Token):
            return str(child)
        node = child
    return None


def _check_names(tree: lark.Tree[Any], functions: frozenset[str]) -> frozenset[str]:
    """Every identifier must be a known variable, macro variable, type or function."""
    used: set[str] = set()
    known_calls = functions | _MACROS | {"has"}
    stack: list[tuple[lark.Tree[Any], frozenset[str]]] = [(tree, frozenset())]
    while stack:
        node, bound = stack.pop()
        data = node.data
        if data in ("ident", "dot_ident"):
            name = str(node.children[0])
            if name in bound:
                continue
            if name in VARIABLES:
                used.add(name)
                continue
            if name in _TYPE_NAMES:
                continue
            line, column = _where(node.children[0])
            raise CelCompileError(
                f"unknown variable {name!r}{_suggest(name, VARIABLES, listing=True)}", line, column
            )
        if data in ("ident_arg", "dot_ident_arg"):
            name = str(node.children[0])
            if name not in known_calls:
                line, column = _where(node.children[0])
                raise CelCompileError(
                    f"unknown function {name!r}{_suggest(name, known_calls)}", line, column
                )
        if data == "member_dot_arg":
            method = node.children[1]
            name = str(method)
            if name not in known_calls:
                line, column = _where(method)
                raise CelCompileError(
                    f"unknown function {name!r}{_suggest(name, known_calls)}", line, column
                )
            if name in _MACROS:
                args = node.children[2] if len(node.children) > 2 else None
                exprs = args.children if isinstance(args, lark.Tree) else []
                var = _ident(exprs[0]) if exprs else None
                if len(exprs) not in (2, 3) or var is None:
                    line, column = _where(method)
                    raise CelCompileError(
                        f"{name}() takes a variable name and an expression", line, column
                    )
                stack.append((node.children[0], bound))
                inner = bound | {var}
                stack.extend((e, inner) for e in exprs[1:] if isinstance(e, lark.Tree))
                continue
        stack.extend((c, bound) for c in node.children if isinstance(c, lark.Tree))
    return frozenset(used)


def _suggest(name: str, known: frozenset[str], *, listing: bool = False) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (variables: {', '.join(sorted(known))})" if listing else ""
