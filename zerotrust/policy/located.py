"""YAML to plain values that remember where each came from.

Policy diagnostics must say file, line and column, so we compose YAML node trees
(safe tags only) and convert them ourselves instead of using ``safe_load``.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import yaml

from zerotrust.request import INT64_MAX, INT64_MIN

__all__ = ["LNode", "YamlProblem", "load_documents"]

MAX_NODES = 200_000
MAX_DEPTH = 64

_STD = "tag:yaml.org,2002:"
# libyaml composes ~15x faster than pure Python, with the same marks (character
# indices, lines, columns); values are still built by the Python SafeConstructor.
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_COLLECTION_TAGS = frozenset({_STD + "seq", _STD + "map"})


class YamlProblem(Exception):
    """Internal: a YAML file that cannot be read; carries a position (1-based)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class LNode:
    """A YAML value with its position. ``value`` holds plain data for scalars,
    ``dict[str, LNode]`` for mappings (with ``keys`` positions) and ``list[LNode]``."""

    __slots__ = ("column", "keys", "line", "raw", "style", "value")

    def __init__(
        self,
        value: Any,
        line: int,
        column: int,
        style: str | None = None,
        keys: dict[str, LNode] | None = None,
        raw: str | None = None,
    ) -> None:
        self.value = value
        self.line = line
        self.column = column
        self.style = style
        self.keys = keys
        #: A scalar's text exactly as written (quotes, escapes, indentation, line breaks),
        #: so positions inside its value can be mapped back to the file.
        self.raw = raw

    def plain(self) -> Any:
        """The value without positions (JSON-shaped; YAML timestamps become ISO strings)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def load_documents(text: str) -> list[LNode | None]:
    """Every YAML document in ``text``; ``None`` for empty documents."""
    counter = [0]
    constructor = yaml.SafeLoader("")
    try:
        nodes = list(yaml.compose_all(text, Loader=_COMPOSER))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        column = mark.column + 1 if mark else 1
        problem = exc.problem or exc.context or "invalid YAML"
        raise YamlProblem(f"invalid YAML: {problem}", line, column) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}", 1, 1) from exc
    except RecursionError as exc:
        raise YamlProblem("invalid YAML: nested too deeply", 1, 1) from exc
    out: list[LNode | None] = []
    for node in nodes:
        if node is None or (isinstance(node, yaml.ScalarNode) and node.tag.endswith(":null")):
            out.append(None)
            continue
        out.append(_convert(node, constructor, counter, 0, text))
    return out


def _convert(node: yaml.Node, constructor: Any, counter: list[int], depth: int, text: str) -> LNode:
    counter[0] += 1
    line, column = node.start_mark.line + 1, node.start_mark.column + 1
    if counter[0] > MAX_NODES:
        raise YamlProblem(f"document has more than {MAX_NODES} values (alias bomb?)", line, column)
    if depth > MAX_DEPTH:
        raise YamlProblem(f"nested deeper than {MAX_DEPTH} levels", line, column)
    if isinstance(node, yaml.ScalarNode):
        try:
            value = constructor.construct_object(node, deep=True)
        except yaml.MarkedYAMLError as exc:
            raise YamlProblem(f"invalid YAML value: {exc.problem}", line, column) from exc
        except (yaml.YAMLError, ValueError, LookupError, TypeError, ArithmeticError) as exc:
            raise YamlProblem(f"invalid YAML value: {exc}", line, column) from exc
        if isinstance(value, float) and not math.isfinite(value):
            raise YamlProblem("NaN and infinity are not allowed", line, column)
        if isinstance(value, datetime.datetime | datetime.date):
            value = value.isoformat()
        elif isinstance(value, bytes):
            raise YamlProblem("binary values are not allowed", line, column)
        elif isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
            raise YamlProblem("integer outside the 64-bit range", line, column)
        raw = text[node.start_mark.index : node.end_mark.index] if isinstance(value, str) else None
        return LNode(value, line, column, style=node.style, raw=raw)
    if node.tag not in _COLLECTION_TAGS:
        raise YamlProblem(f"unsupported YAML tag {node.tag!r}", line, column)
    if isinstance(node, yaml.SequenceNode):
        items = [_convert(item, constructor, counter, depth + 1, text) for item in node.value]
        return LNode(items, line, column)
    if isinstance(node, yaml.MappingNode):
        values: dict[str, LNode] = {}
        keys: dict[str, LNode] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _STD + "merge":
                mark = key_node.start_mark
                raise YamlProblem(
                    "YAML merge keys (<<) are not supported", mark.line + 1, mark.column + 1
                )
            key = _convert(key_node, constructor, counter, depth + 1, text)
            if not isinstance(key.value, str):
                raise YamlProblem(
                    f"keys must be strings, found {type(key.value).__name__} {key.value!r}",
                    key.line,
                    key.column,
                )
            if key.value in values:
                raise YamlProblem(f"duplicate key {key.value!r}", key.line, key.column)
            values[key.value] = _convert(value_node, constructor, counter, depth + 1, text)
            keys[key.value] = key
        return LNode(values, line, column, keys=keys)
    raise YamlProblem(f"unsupported YAML node {type(node).__name__}", line, column)
