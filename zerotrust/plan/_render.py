"""A residual as text (``zerotrust plan``, the decision log) and as JSON data."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from zerotrust.plan.residual import (
    And,
    Call,
    Compare,
    Error,
    Field,
    Fires,
    Has,
    In,
    Node,
    Not,
    Opaque,
    Or,
    Value,
    _kind,
    _path_text,
)

__all__ = ["cel_text", "json_data"]

_PRECEDENCE = {Or: 1, And: 2}


def cel_text(node: Node) -> str:
    """The residual as CEL-like text (``fires(x)`` is the one word CEL lacks)."""
    return _cel(node, 0)


def _cel(node: Node, outer: int) -> str:
    if isinstance(node, Value):
        return _literal(node.value)
    if isinstance(node, Error):
        return f"error({json.dumps(node.message, ensure_ascii=False)})"
    if isinstance(node, Field):
        return _path_text(node.path)
    if isinstance(node, Has):
        last = node.path[-1]
        if last.isidentifier():
            return f"has({_path_text(node.path)})"
        return f"{json.dumps(last, ensure_ascii=False)} in {_path_text(node.path[:-1])}"
    if isinstance(node, And | Or):
        level = _PRECEDENCE[type(node)]
        op = " && " if isinstance(node, And) else " || "
        text = _cel(node.left, level) + op + _cel(node.right, level)
        return f"({text})" if outer > level else text
    if isinstance(node, Not):
        return f"!{_cel(node.operand, 9)}"
    if isinstance(node, Fires):
        return f"fires({_cel(node.operand, 0)})"
    if isinstance(node, Compare):
        text = f"{_cel(node.left, 5)} {node.op} {_cel(node.right, 5)}"
        return f"({text})" if outer > 3 else text
    if isinstance(node, In):
        text = f"{_cel(node.item, 5)} in {_cel(node.container, 5)}"
        return f"({text})" if outer > 3 else text
    if isinstance(node, Call):
        args = ", ".join(_cel(a, 0) for a in node.args)
        return f"{_cel(node.target, 9)}.{node.name}({args})"
    if isinstance(node, Opaque):
        return f"({node.source})"
    raise TypeError(f"not a residual node: {node!r}")


def _literal(value: Any) -> str:
    if value is None:
        return "null"
    if type(value) is bool:
        return "true" if value else "false"
    if type(value) is float:
        if math.isnan(value) or math.isinf(value):
            return f'double("{value}")'
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_literal(v) for v in value) + "]"
    if isinstance(value, Mapping):
        items = (f"{_literal(k)}: {_literal(v)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if type(value) is int:
        return str(value)
    return f"{_kind(value)}({json.dumps(str(value), ensure_ascii=False)})"


def json_data(node: Node) -> Any:
    """The residual as JSON data: ``{"op": ..., ...}`` nodes, known values as
    ``{"value": v}`` (or ``{"value": text, "type": kind}`` when JSON has no such value)."""
    if isinstance(node, Value):
        return _json_value(node.value)
    if isinstance(node, Error):
        return {"error": node.message}
    if isinstance(node, Field | Has):
        return {"op": "field" if isinstance(node, Field) else "has", "path": node.name}
    if isinstance(node, And | Or):
        return {"op": "and" if isinstance(node, And) else "or", "args": _flat(node, type(node))}
    if isinstance(node, Not | Fires):
        return {"op": "not" if isinstance(node, Not) else "fires", "arg": json_data(node.operand)}
    if isinstance(node, Compare):
        return {"op": node.op, "args": [json_data(node.left), json_data(node.right)]}
    if isinstance(node, In):
        return {"op": "in", "args": [json_data(node.item), json_data(node.container)]}
    if isinstance(node, Call):
        return {"op": node.name, "args": [json_data(node.target), *map(json_data, node.args)]}
    if isinstance(node, Opaque):
        return {"op": "opaque", "source": node.source}
    raise TypeError(f"not a residual node: {node!r}")


def _flat(node: Node, kind: type) -> list[Any]:
    if isinstance(node, kind):
        return _flat(node.left, kind) + _flat(node.right, kind)  # type: ignore[attr-defined]
    return [json_data(node)]


def _json_value(value: Any) -> Any:
    plain = _plain(value)
    if plain is not _NOT_JSON:
        return {"value": plain}
    return {"value": str(value), "type": _kind(value)}


_NOT_JSON = object()


def _plain(value: Any) -> Any:
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else _NOT_JSON
    if isinstance(value, list | tuple):
        items = [_plain(v) for v in value]
        return _NOT_JSON if any(i is _NOT_JSON for i in items) else items
    if isinstance(value, Mapping):
        pairs = {k: _plain(v) for k, v in value.items()}
        if any(type(k) is not str for k in pairs) or any(v is _NOT_JSON for v in pairs.values()):
            return _NOT_JSON
        return pairs
    return _NOT_JSON
