"""Parsing CEL with cel-python's own grammar, plus the checks a policy author wants at load.

We build our own Lark parser from celpy's ``cel.lark`` rather than using
``celpy.Environment``: the environment changes ``sys.setrecursionlimit`` and shares
one parser through a class attribute, both visible to the host application.

Two parsers are built from the one grammar (in :mod:`._syntax_fast`, with the fast
parse loop). :func:`parse` (positions on) is the exact path: every node knows its line
and column, for diagnostics and for the interpreter.
:func:`parse_fast` is what the compiler uses at load: no position propagation (about
half of Lark's time per parse), plain ``str`` node names instead of ``Token`` (whose
Python-level ``__eq__`` made every ``node.data in (...)`` slow), and the three checks
folded into one traversal. It only ever *accepts*: on any problem it returns ``None``
and the caller re-parses with :func:`parse`, which produces the diagnostic with its
exact position. Errors are rare, so the second parse costs nothing in practice.

Lark's ``cache=True`` is deliberately not used: it unpickles the parser from a file in
the shared temporary directory, which another local user could replace.
"""

from __future__ import annotations

import difflib
import functools
import re
import string
from typing import Any

import lark
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from zerotrust.cel._backend import VARIABLES, CelCompileError
from zerotrust.cel._syntax_fast import _build_parser, _fast_parser

__all__ = [
    "MAX_SOURCE_CHARS",
    "MAX_TREE_DEPTH",
    "TOO_DEEP",
    "Parsed",
    "parse",
    "parse_fast",
    "unwrap",
]

#: The longest condition accepted, in characters.
MAX_SOURCE_CHARS = 20_000
#: How deep the syntax tree may be: each bracket level is about ten levels of it, each
#: chained operator (``a || b || ...``) one. Parsing is iterative; this bounds what
#: walks the tree recursively (the code generator, cel-python's evaluator).
MAX_TREE_DEPTH = 400
#: The diagnostic for a tree deeper than :data:`MAX_TREE_DEPTH`.
TOO_DEEP = (
    f"condition nested too deeply: about 40 levels of brackets or {MAX_TREE_DEPTH} chained"
    f" operators (limit {MAX_TREE_DEPTH} levels of syntax)"
)

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
# Names CEL resolves as values besides variables: the type identifiers.
_TYPE_NAMES = frozenset(
    {"int", "uint", "double", "bool", "string", "bytes", "list", "map", "null_type", "type"}
)
_HAS = frozenset({"has"})
_SURROGATE = re.compile(r"[\ud800-\udfff]")
# Bidirectional embeddings, overrides and isolates: inside a string literal they make a
# condition display otherwise than it evaluates ("Trojan Source", CVE-2021-42574); the
# set rustc's text_direction_codepoint lints refuse.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069]")
_WORD = frozenset(string.ascii_letters + string.digits + "_")
_NOTHING: frozenset[str] = frozenset()
_IDENTS = frozenset({"ident", "dot_ident"})
_CALLS = frozenset({"ident_arg", "dot_ident_arg"})
_NAMED = _IDENTS | _CALLS | {"member_dot_arg"}
_QUALIFIABLE = frozenset({"member_dot", "member_dot_arg"})
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
    return _build_parser(positions=True)


class Parsed:
    """A parsed, checked expression: the tree and the top-level variables it reads."""

    __slots__ = ("source", "tree", "variables")

    def __init__(self, source: str, tree: lark.Tree[Any], variables: frozenset[str]) -> None:
        self.source = source
        self.tree = tree
        self.variables = variables


def _check_source(source: Any) -> None:
    if not isinstance(source, str):
        raise CelCompileError(f"a condition must be a string, not {type(source).__name__}")
    if not source.strip():
        raise CelCompileError("empty condition")
    if len(source) > MAX_SOURCE_CHARS:
        raise CelCompileError(f"condition longer than {MAX_SOURCE_CHARS} characters")
    surrogate = _SURROGATE.search(source)
    if surrogate is not None:
        i = surrogate.start()
        line, column = source.count("\n", 0, i) + 1, i - source.rfind("\n", 0, i)
        raise CelCompileError(
            "an unpaired surrogate is not text (not encodable as UTF-8)", line, column
        )
    bidi = _BIDI.search(source)
    if bidi is not None:
        i = bidi.start()
        line, column = source.count("\n", 0, i) + 1, i - source.rfind("\n", 0, i)
        code = f"{ord(bidi.group()):04x}"
        raise CelCompileError(
            f"bidirectional control character U+{code.upper()} in a condition: it makes the "
            f"condition display otherwise than it evaluates; to match the character, write "
            f"it as an escape (\\u{code})",
            line,
            column,
        )
    _check_strings(source)


def _check_strings(source: str) -> None:
    """Refuse an unterminated string literal, with its position, before Lark sees it.

    Lark would only say that no token matches at the opening quote. Mirrors the lexer
    (``_grammar``): outside raw strings a backslash escapes the next character, a
    one-quote string ends at a line break (escaped or not), ``//`` starts a comment.
    """
    i, n = 0, len(source)
    while i < n:
        char = source[i]
        if char == "/" and source.startswith("//", i):
            end = source.find("\n", i)
            i = n if end < 0 else end + 1
            continue
        if char not in "\"'":
            i += 1
            continue
        # a raw prefix: r'...', R'...', br'...' (an identifier ending in r is not one)
        raw = i > 0 and source[i - 1] in "rR" and not _ident_before(source, i - 1)
        quote = char * 3 if source.startswith(char * 3, i) else char
        single = len(quote) == 1
        j = i + len(quote)
        while True:
            if j >= n or (single and source[j] in "\r\n"):
                line = source.count("\n", 0, i) + 1
                column = i - source.rfind("\n", 0, i)
                raise CelCompileError("syntax error: unterminated string literal", line, column)
            if source[j] == "\\" and not raw:
                j += 1 if single and source[j + 1 : j + 2] in ("\r", "\n") else 2
            elif source.startswith(quote, j):
                j += len(quote)
                break
            else:
                j += 1
        i = j


def _ident_before(source: str, at: int) -> bool:
    """Whether ``source[at]`` (an ``r``/``R``) ends an identifier rather than starting a
    raw prefix: ``for'x'`` is the identifier ``for`` then a string, ``br'x'`` raw bytes."""
    start = at
    while start > 0 and source[start - 1] in _WORD:
        start -= 1
    return source[start:at] not in ("", "b", "B")


def parse(source: str, functions: frozenset[str]) -> Parsed:
    """Parse and check ``source``; ``functions`` are the callable names the backend knows.

    The exact path: the tree carries positions and a problem is a
    :class:`CelCompileError` with its line and column.
    """
    _check_source(source)
    tree = _syntax_tree(_parser(), source)
    _check_depth(tree)
    _check_boolean_root(tree)
    variables = _check_names(tree, functions)
    return Parsed(source, tree, variables)


def parse_fast(source: str, functions: frozenset[str]) -> Parsed | None:
    """:func:`parse` without positions, or ``None`` if ``source`` has any problem.

    Accepts exactly what :func:`parse` accepts, with the same ``variables``; the tree
    has the same shape but plain-str node names and no positions. On ``None`` call
    :func:`parse` for the diagnostic.
    """
    try:
        _check_source(source)
    except CelCompileError:
        return None
    tree = _fast_parser()(source)
    if tree is None or _boolean_root_problem(tree) is not None:
        return None
    variables = _check_fast(tree, functions)
    if variables is None:
        return None
    return Parsed(source, tree, variables)


def _syntax_tree(parser: lark.Lark, source: str) -> lark.Tree[Any]:
    try:
        return parser.parse(source)
    except UnexpectedCharacters as exc:
        raise CelCompileError(
            f"syntax error: unexpected character {_char_at(source, exc.pos_in_stream)}",
            exc.line,
            exc.column,
        ) from exc
    except UnexpectedToken as exc:
        if exc.token.type == "$END":
            # Just after the last non-blank character: trailing newlines are YAML's.
            lines = source.rstrip().split("\n")
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
        raise CelCompileError(TOO_DEEP) from exc


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
            raise CelCompileError(TOO_DEEP, line, column)
        stack.extend((c, depth + 1) for c in node.children if isinstance(c, lark.Tree))


def _boolean_root_problem(tree: lark.Tree[Any]) -> tuple[lark.Tree[Any], str] | None:
    """The node and message if the condition can never be a boolean (constant, arithmetic)."""
    node = tree
    while node.data not in _NOT_BOOLEAN:
        subtrees = [c for c in node.children if isinstance(c, lark.Tree)]
        if subtrees and subtrees[0].data in _NOT_BOOLEAN and len(node.children) > 1:
            node = subtrees[0]  # an operator node holds the left operand; its parent the right
            break
        if len(node.children) != 1 or not subtrees:
            break
        node = subtrees[0]
    if node.data == "literal":
        token = node.children[0]
        if isinstance(token, lark.Token) and token.type != "BOOL_LIT":
            return node, f"condition is the constant {token!s}, not a boolean"
    elif node.data in _NOT_BOOLEAN:
        return node, f"condition is {_NOT_BOOLEAN[str(node.data)]}, never a boolean"
    return None


def _check_boolean_root(tree: lark.Tree[Any]) -> None:
    """Refuse conditions that can never be a boolean: constants, arithmetic, literals."""
    problem = _boolean_root_problem(tree)
    if problem is not None:
        node, message = problem
        line, column = _where(node)
        raise CelCompileError(message, line, column)


# Nodes with one child that are not a wrapper around it: ``[x]`` is a list, not ``x``.
_COLLECTIONS = frozenset({"list_lit", "map_lit", "exprlist", "mapinits", "fieldinits"})


def unwrap(node: lark.Tree[Any]) -> lark.Tree[Any]:
    """``node`` without the single-child nodes around what it is (``expr``, ``member``,
    ``primary``, parentheses...), never descending into a list or map literal: a
    one-element list is not its element (``1 in [[1]]`` is false, ``has([a.b])`` and
    ``timestamp(['...'])`` are not ``has(a.b)`` and ``timestamp('...')``)."""
    while (
        node.data not in _COLLECTIONS
        and len(node.children) == 1
        and isinstance(node.children[0], lark.Tree)
    ):
        node = node.children[0]
    return node


def _ident(expr: Any) -> str | None:
    """The bare identifier an ``expr`` consists of, if it is one (macro variables)."""
    if not isinstance(expr, lark.Tree):
        return None
    node = unwrap(expr)
    if node.data == "ident" and len(node.children) == 1:
        return str(node.children[0])
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
        if data in _QUALIFIABLE and _qualified(node, bound, functions):
            # ip.isCanonical(x): check the arguments, not the qualifier
            stack.extend((c, bound) for c in node.children[2:] if isinstance(c, lark.Tree))
            continue
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
                if len(exprs) != _macro_arity(name, len(exprs)) or var is None:
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


@functools.lru_cache(maxsize=8)
def _members(functions: frozenset[str]) -> frozenset[str]:
    """What follows the dot in the qualified names among ``functions`` (``isCanonical``)."""
    return frozenset(name.rpartition(".")[2] for name in functions if "." in name)


def _qualified(node: lark.Tree[Any], bound: frozenset[str], functions: frozenset[str]) -> bool:
    """Whether ``node`` (``a.b`` or ``a.b(...)``) names a qualified function or type the
    backend knows (``ip.isCanonical``, ``net.IP``): ``a`` a bare name that is no variable."""
    if node.children[1] not in _members(functions):
        return False  # the common case, a field: no unwrapping the target
    qualifier = _ident(node.children[0])
    return (
        qualifier is not None
        and qualifier not in bound
        and qualifier not in VARIABLES
        and f"{qualifier}.{node.children[1]}" in functions
    )


def _macro_arity(name: Any, given: int) -> int:
    """The argument count macro ``name`` takes: 2, or 2 or 3 for ``map`` (with a filter)."""
    return given if name == "map" and given in (2, 3) else 2


def _check_fast(tree: lark.Tree[Any], functions: frozenset[str]) -> frozenset[str] | None:
    """:func:`_check_depth` and :func:`_check_names` in one traversal, without messages.

    The variables read, or ``None`` where either check would raise. Depth is checked on
    every node (as ``_check_depth``); names with the same macro scoping as
    ``_check_names``.
    """
    used: set[str] = set()
    known_calls = functions | _MACROS | _HAS
    tree_class = lark.Tree
    stack: list[tuple[lark.Tree[Any], int, frozenset[str]]] = [(tree, 1, _NOTHING)]
    pop = stack.pop
    push = stack.append
    while stack:
        node, depth, bound = pop()
        if depth > MAX_TREE_DEPTH:
            return None
        data = node.data
        children = node.children
        if data in _QUALIFIABLE and _qualified(node, bound, functions):
            depth += 1
            for c in children[2:]:
                if isinstance(c, tree_class):
                    push((c, depth, bound))
            continue
        if data in _NAMED:
            if data in _IDENTS:
                name = children[0]
                if name in bound or name in _TYPE_NAMES:
                    continue
                if name not in VARIABLES:
                    return None
                used.add(str(name))
                continue
            if data in _CALLS:
                if children[0] not in known_calls:
                    return None
            else:  # member_dot_arg
                name = children[1]
                if name not in known_calls:
                    return None
                if name in _MACROS:
                    args = children[2] if len(children) > 2 else None
                    exprs = args.children if isinstance(args, tree_class) else []
                    var = _ident(exprs[0]) if exprs else None
                    if len(exprs) != _macro_arity(name, len(exprs)) or var is None:
                        return None
                    if not _shallow(exprs[0], depth + 2):
                        return None
                    target = children[0]
                    if isinstance(target, tree_class):
                        push((target, depth + 1, bound))
                    inner = bound | {var}
                    for e in exprs[1:]:
                        if isinstance(e, tree_class):
                            push((e, depth + 2, inner))
                    continue
        depth += 1
        for c in children:
            if isinstance(c, tree_class):
                push((c, depth, bound))
    return frozenset(used)


def _shallow(node: lark.Tree[Any], depth: int) -> bool:
    """Whether every node under ``node`` (at ``depth``) is within ``MAX_TREE_DEPTH``."""
    stack = [(node, depth)]
    while stack:
        n, d = stack.pop()
        if d > MAX_TREE_DEPTH:
            return False
        stack.extend((c, d + 1) for c in n.children if isinstance(c, lark.Tree))
    return True


def _suggest(name: str, known: frozenset[str], *, listing: bool = False) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    if close:
        return f" (did you mean {close[0]!r}?)"
    return f" (variables: {', '.join(sorted(known))})" if listing else ""
