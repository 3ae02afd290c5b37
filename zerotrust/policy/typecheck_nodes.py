"""The syntax-tree helpers of the condition checker's walk: unwrapping, literals, and
paths as the author wrote them (for messages)."""

from __future__ import annotations

import json
from typing import Any

import lark

from zerotrust.cel._codegen_base import literal_value

__all__ = [
    "BY",
    "Path",
    "at",
    "cel",
    "exprs",
    "guard",
    "identifier",
    "is_null",
    "literal",
    "string_literal",
    "text",
    "unwrap",
]

Path = tuple[str, ...]
BY = "\1"  # a path's step through a key that is the value of another path


def at(node: Any) -> int:
    if isinstance(node, lark.Token):
        return node.start_pos or 0
    meta = node.meta
    return 0 if getattr(meta, "empty", True) else int(meta.start_pos)


#: Nodes that, with one child, are only that child.
_WRAPPERS = frozenset(
    {
        "expr",
        "conditionalor",
        "conditionaland",
        "relation",
        "addition",
        "multiplication",
        "unary",
        "member",
        "primary",
        "paren_expr",
    }
)


def unwrap(node: Any) -> Any:
    tree = lark.Tree
    while node.__class__ is tree and len(node.children) == 1 and node.data in _WRAPPERS:
        node = node.children[0]
    return node


def exprs(node: Any) -> list[Any]:
    return list(node.children) if isinstance(node, lark.Tree) else []


def is_null(node: Any) -> bool:
    inner = unwrap(node)
    return (
        isinstance(inner, lark.Tree)
        and inner.data == "literal"
        and getattr(inner.children[0], "type", None) == "NULL_LIT"
    )


def string_literal(node: Any) -> str | None:
    inner = unwrap(node)
    if isinstance(inner, lark.Tree) and inner.data == "literal":
        token = inner.children[0]
        if isinstance(token, lark.Token) and token.type == "STRING_LIT":
            value = literal_value(token)
            return value if isinstance(value, str) else None
    return None


def identifier(node: Any) -> str | None:
    inner = unwrap(node)
    if isinstance(inner, lark.Tree) and inner.data == "ident":
        return str(inner.children[0])
    return None


def text(path: Path | None, field: str) -> str:
    """A path as the author wrote it (a macro variable by its name)."""
    if path is None:
        return field
    parts = [path[0].partition("#")[0]]
    for p in path[1:]:
        by = ".".join(step.partition("#")[0] for step in p.removeprefix(BY).split("."))
        parts.append(p if p.isidentifier() else f"[{by}]" if by != p else f"[{p!r}]")
    return ".".join(parts).replace(".[", "[")


def guard(path: Path | None, field: str) -> str:
    """The guard for a path: ``has()`` takes a field selection, so a key that is no
    identifier is tested with ``in``."""
    if field.isidentifier() or path is None or len(path) < 2:
        return f"has({text(path, field)})"
    return f"{field!r} in {text(path[:-1], path[-2])}"


def cel(value: Any) -> str:
    """A literal value as CEL writes it (``false``, ``"c"``, ``1.5``)."""
    return json.dumps(value, ensure_ascii=False)


def literal(node: Any) -> bool:
    inner = unwrap(node)
    return isinstance(inner, lark.Tree) and inner.data == "literal"
