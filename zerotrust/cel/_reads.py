"""The attribute paths a condition reads, and their values in one request (for ``explain``).

Found in the CEL source, not by watching an evaluation: both backends read their
bindings in their own way (the compiled code tests ``__class__ is dict``, cel-python
wraps every value), so a recording stand-in for the bindings would change what they
compute. The paths are the maximal chains of field selections and literal (or
path-valued) indexes that start at a variable, ``resource.properties.owner_dept`` or
``data.owners[resource.id]``; each is then looked up in the plain request values the
condition was given. A path on a branch the evaluation skipped (the right of a
``false &&``) is listed too, with the value it has. Only the explain path runs this.
"""

from __future__ import annotations

import datetime
import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs
import lark
from lark.exceptions import LarkError

from zerotrust.cel._backend import VARIABLES, CelCompileError
from zerotrust.cel._codegen_base import literal_value
from zerotrust.cel._syntax import _parser

__all__ = ["AttributePath", "PathValue", "attribute_paths", "values_read"]

_MACROS = frozenset({"all", "exists", "exists_one", "map", "filter"})
_NAME = re.compile(r"[_a-zA-Z][_a-zA-Z0-9]*\Z")
# The chain a bare operand is wrapped in: expr > conditionalor > ... > unary > member.
_WRAPPERS = frozenset(
    {"expr", "conditionalor", "conditionaland", "relation", "addition", "multiplication", "unary"}
)
_KEY_CHARS = 60  # of a looked-up key shown in a path
_PATH_NODES = frozenset({"member", "primary", "ident", "dot_ident"})
#: Paths kept per source text (the parse is the expensive part).
_CACHED = 2048


@attrs.frozen
class AttributePath:
    """``root`` then its steps: a field or key (str), an index (int), or a nested path
    whose value is the key (``data.owners[resource.id]``)."""

    root: str
    steps: tuple[str | int | bool | AttributePath, ...] = ()


@attrs.frozen
class PathValue:
    """One path as read in a request: ``path`` as text, keys filled in; ``value`` is
    meaningless when ``found`` is false."""

    path: str
    found: bool
    value: Any = None


@functools.lru_cache(maxsize=_CACHED)
def attribute_paths(source: str) -> tuple[AttributePath, ...]:
    """Every attribute path ``source`` reads, in source order, once each.

    An unparsable source has none: it never compiled, so it was never evaluated.
    """
    try:
        tree = _parser().parse(source)
    except (LarkError, RecursionError, CelCompileError):
        return ()
    found: list[AttributePath] = []
    try:
        _collect(tree, frozenset(), found)
    except RecursionError:
        return ()
    return tuple(dict.fromkeys(found))


def values_read(source: str, variables: Mapping[str, Any]) -> tuple[PathValue, ...]:
    """Each path of :func:`attribute_paths` with its value in ``variables`` (or not found).

    An index path's key is looked up first and listed before it (it is read too).
    """
    out: dict[str, PathValue] = {}
    for path in attribute_paths(source):
        _resolve(path, variables, out)
    return tuple(out.values())


def _resolve(path: AttributePath, variables: Mapping[str, Any], out: dict[str, PathValue]) -> Any:
    """``path``'s value (recorded in ``out``), or ``_MISSING``."""
    text = path.root
    value: Any = variables.get(path.root, _MISSING)
    for step in path.steps:
        before = text
        if isinstance(step, AttributePath):
            key = _resolve(step, variables, out)
            if key is _MISSING:
                return _MISSING  # the key is missing, so the lookup never happened
            text += _index_text(key)  # a lookup shows as one: data.owners["c-1"]
        else:
            key = step
            text += _step_text(key)
        if value is not _MISSING:
            stepped = _step(value, key)
            if stepped is _MISSING and not isinstance(value, Mapping):
                # Not a misspelt key: what it is read from has no fields. Show that value.
                out.setdefault(before, PathValue(before, True, value))
            value = stepped
    found = value is not _MISSING
    out.setdefault(text, PathValue(text, found, value if found else None))
    return value


def _step(value: Any, key: Any) -> Any:
    if isinstance(value, Mapping):
        try:
            return value.get(key, _MISSING)
        except TypeError:  # an unhashable key
            return _MISSING
    if isinstance(value, list | tuple) and type(key) is int and 0 <= key < len(value):
        return value[key]  # (CEL has no negative indexes)
    return _MISSING


def _step_text(key: Any) -> str:
    return f".{key}" if type(key) is str and _NAME.match(key) else _index_text(key)


def _index_text(key: Any) -> str:
    """A key as CEL would write it: JSON literals are CEL literals (``["a-b"]``,
    ``[2]``, ``[null]``); a timestamp as its ISO 8601 text."""
    if type(key) is str:
        return "[" + _quoted(key) + "]"
    if isinstance(key, datetime.datetime):
        return "[" + _quoted(key.isoformat()) + "]"
    try:
        return "[" + json.dumps(key) + "]"
    except (TypeError, ValueError):
        return "[" + _quoted(repr(key)) + "]"


def _quoted(text: str) -> str:
    """A key as a JSON string literal (CEL reads it the same), cut short when long."""
    return json.dumps(text if len(text) <= _KEY_CHARS else text[: _KEY_CHARS - 3] + "...")


class _Missing:
    __slots__ = ()


_MISSING: Any = _Missing()


def _collect(node: Any, bound: frozenset[str], found: list[AttributePath]) -> None:
    """Add the paths under ``node`` to ``found``; ``bound`` are the macro variables in scope."""
    if not isinstance(node, lark.Tree):
        return
    kind = str(node.data)
    if kind in _PATH_NODES or kind.startswith("member_"):
        path = _path(node, bound)
        if path is not None:
            found.append(path)
            return
    if kind == "member_dot_arg":
        receiver, name, args = node.children[0], str(node.children[1]), node.children[2:]
        _collect(receiver, bound, found)
        exprs = args[0].children if args and isinstance(args[0], lark.Tree) else []
        if name in _MACROS and exprs:
            variable = _ident(exprs[0])
            inner = bound | {variable} if variable is not None else bound
            for expr in exprs[1:]:
                _collect(expr, inner, found)
            return
        for expr in exprs:
            _collect(expr, bound, found)
        return
    for child in node.children:
        _collect(child, bound, found)


def _path(node: Any, bound: frozenset[str]) -> AttributePath | None:
    """``node`` as an attribute path from a variable, or None if it is something else."""
    if not isinstance(node, lark.Tree):
        return None
    kind = str(node.data)
    children = node.children
    if kind in ("member", "primary") and len(children) == 1:
        return _path(children[0], bound)
    if kind == "ident":
        name = str(children[0])
        return AttributePath(name) if name in VARIABLES and name not in bound else None
    if kind == "dot_ident":  # ``.subject``: the variable, whatever a macro binds
        name = str(children[0])
        return AttributePath(name) if name in VARIABLES else None
    if kind == "member_dot":
        base = _path(children[0], bound)
        if base is None:
            return None
        return attrs.evolve(base, steps=(*base.steps, str(children[1])))
    if kind == "member_index":
        base = _path(children[0], bound)
        if base is None:
            return None
        key = _key(children[1], bound)
        if key is None:
            return None
        return attrs.evolve(base, steps=(*base.steps, key))
    return None


def _key(expr: Any, bound: frozenset[str]) -> str | int | bool | AttributePath | None:
    """An index as a step: a string, int or bool literal, or an attribute path."""
    node = _unwrapped(expr)
    if node is None:
        return None
    if node.data == "primary" and len(node.children) == 1:
        inner = node.children[0]
        if isinstance(inner, lark.Tree) and inner.data == "literal":
            token = inner.children[0]
            if not isinstance(token, lark.Token):
                return None
            try:
                value = literal_value(token)
            except CelCompileError:
                return None
            return value if type(value) in (str, int, bool) else None
    return _path(node, bound)


def _unwrapped(expr: Any) -> lark.Tree[Any] | None:
    """The member under a bare operand's wrapper chain, or None if it is an operation."""
    node = expr
    while isinstance(node, lark.Tree) and str(node.data) in _WRAPPERS:
        if len(node.children) != 1:
            return None
        node = node.children[0]
    if isinstance(node, lark.Tree) and node.data == "member" and len(node.children) == 1:
        child = node.children[0]
        return child if isinstance(child, lark.Tree) else None
    return None


def _ident(expr: Any) -> str | None:
    node = _unwrapped(expr)
    if node is not None and node.data == "primary" and len(node.children) == 1:
        inner = node.children[0]
        if isinstance(inner, lark.Tree) and inner.data == "ident":
            return str(inner.children[0])
    return None
