"""Policy and data text to plain values that remember where each came from.

Policy diagnostics must say file, line and column, so we compose YAML node trees
(safe tags only) and convert them ourselves instead of using ``safe_load``, and read
JSON data with a small reader of our own instead of ``json.loads`` (which reports
duplicate keys, huge integers and infinities without a position, and recurses).
YAML and JSON obey one set of limits, checked where the value is written:

* at most ``MAX_NODES`` values per document, nested at most ``MAX_DEPTH`` levels;
* integers within 64 bits (CEL's ``int``), floats finite;
* no duplicate keys, keys are strings;
* strings are text: no control character other than tab and line breaks, no lone
  surrogate (``"\\ud800"`` cannot be written as UTF-8, so it could not be logged,
  stored or compared reliably).
"""

from __future__ import annotations

import datetime
import json
import math
import re
from collections.abc import Callable
from json import decoder
from typing import Any, NoReturn

import yaml

from zerotrust.request import INT64_MAX, INT64_MIN

__all__ = ["LNode", "YamlProblem", "load_documents", "load_json"]

MAX_NODES = 200_000
MAX_DEPTH = 64

TOO_MANY = f"document has more than {MAX_NODES} values"
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
INT_RANGE = "integer outside the 64-bit range"
NOT_FINITE = "NaN and infinity are not allowed"

_STD = "tag:yaml.org,2002:"
# libyaml composes ~15x faster than pure Python, with the same marks (character
# indices, lines, columns); values are still built by the Python SafeConstructor.
_COMPOSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_COLLECTION_TAGS = frozenset({_STD + "seq", _STD + "map"})
# What YAML refuses in a file, plus lone surrogates: refused in every string value,
# however it was written (YAML "\x00" / "\ud800" escapes, JSON "\u0000" escapes).
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
# No 64-bit integer needs more characters than this in any YAML notation (0b + 64
# digits); longer ones are refused before int() runs (CPython refuses > 4,300 decimal
# digits with a ValueError, and without that limit the conversion is quadratic).
_MAX_INT_CHARS = 100


class YamlProblem(Exception):
    """Internal: a YAML or JSON file that cannot be read; carries a position (1-based)."""

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

    def __repr__(self) -> str:
        # Messages may show a value; they must show the policy's, not our objects.
        return repr(self.plain())

    def plain(self) -> Any:
        """The value without positions (JSON-shaped; YAML timestamps become ISO strings)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


def text_problem(value: str) -> str | None:
    """Why ``value`` is not acceptable text, or None."""
    found = _NOT_TEXT.search(value)
    if found is None:
        return None
    char = ord(found.group())
    what = "a lone surrogate" if 0xD800 <= char <= 0xDFFF else "a control character"
    return f"strings must be text: U+{char:04X} is {what}"


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
        raise YamlProblem(f"{TOO_MANY} (alias bomb?)", line, column)
    if depth > MAX_DEPTH:
        raise YamlProblem(TOO_DEEP, line, column)
    if isinstance(node, yaml.ScalarNode):
        value = _scalar(node, constructor, line, column)
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
                    f"keys must be strings, found {_yaml_kind(key.value)} {key!r}",
                    key.line,
                    key.column,
                )
            if key.value in values:
                raise YamlProblem(f"duplicate key {key.value!r}", key.line, key.column)
            values[key.value] = _convert(value_node, constructor, counter, depth + 1, text)
            keys[key.value] = key
        return LNode(values, line, column, keys=keys)
    raise YamlProblem(f"unsupported YAML node {type(node).__name__}", line, column)


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _scalar(node: yaml.ScalarNode, constructor: Any, line: int, column: int) -> Any:
    if node.tag == _STD + "int" and len(node.value) > _MAX_INT_CHARS:
        raise YamlProblem(INT_RANGE, line, column)
    try:
        value = constructor.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(f"invalid YAML value: {exc.problem}", line, column) from exc
    except (yaml.YAMLError, ValueError, LookupError, TypeError, ArithmeticError) as exc:
        raise YamlProblem(f"invalid YAML value: {exc}", line, column) from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise YamlProblem(NOT_FINITE, line, column)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        raise YamlProblem("binary values are not allowed", line, column)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise YamlProblem(INT_RANGE, line, column)
    if isinstance(value, str):
        problem = text_problem(value)
        if problem is not None:
            raise YamlProblem(problem, line, column)
    return value


# --- JSON (RFC 8259) ------------------------------------------------------------------

# The C string scanner json.loads uses (not in typeshed): escapes, control characters.
_scanstring: Callable[[str, int, bool], tuple[str, int]] = decoder.scanstring  # type: ignore[attr-defined]
_WS = re.compile(r"[ \t\n\r]*")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")
_LITERALS = (("null", None), ("true", True), ("false", False))
_NOT_JSON_NUMBERS = ("NaN", "Infinity", "-Infinity")


def _syntax(message: str) -> str:
    return f"invalid JSON: {message}"


class _JsonReader:
    """An iterative JSON reader (no recursion, so no depth can crash it)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.count = 0
        #: Where each top-level key was written, for diagnostics about data keys.
        self.top_keys: dict[str, tuple[int, int]] = {}

    def fail(self, message: str, index: int) -> NoReturn:
        raise YamlProblem(message, *self.position(index))

    def skip(self, index: int) -> int:
        found = _WS.match(self.text, index)
        return found.end() if found else index

    def read(self) -> Any:
        text = self.text
        # The open containers, innermost last, and the pending key of each open mapping.
        stack: list[dict[str, Any] | list[Any]] = []
        keys: list[str] = []
        i = self.skip(0)
        while True:
            self.count += 1
            if self.count > MAX_NODES:
                self.fail(TOO_MANY, i)
            if len(stack) > MAX_DEPTH:
                self.fail(TOO_DEEP, i)
            char = text[i : i + 1]
            value: Any
            if char == "{":
                mapping: dict[str, Any] = {}
                stack.append(mapping)
                i = self.skip(i + 1)
                if text[i : i + 1] != "}":
                    i = self.key(i, mapping, keys, len(stack))
                    continue
                stack.pop()
                value, i = mapping, i + 1
            elif char == "[":
                stack.append([])
                i = self.skip(i + 1)
                if text[i : i + 1] != "]":
                    continue
                value, i = stack.pop(), i + 1
            else:
                value, i = self.scalar(i)
            # A value is complete: attach it, closing every container it completes.
            while stack:
                container = stack[-1]
                if isinstance(container, list):
                    container.append(value)
                else:
                    container[keys.pop()] = value
                i = self.skip(i)
                closer = "]" if isinstance(container, list) else "}"
                char = text[i : i + 1]
                if char == ",":
                    i = self.skip(i + 1)
                    if isinstance(container, dict):
                        i = self.key(i, container, keys, len(stack))
                    break
                if char != closer:
                    self.fail(_syntax(f"Expecting ',' delimiter or '{closer}'"), i)
                stack.pop()
                value, i = container, i + 1
            else:
                i = self.skip(i)
                if i < len(text):
                    self.fail(_syntax("Extra data after the value"), i)
                return value

    def key(self, i: int, mapping: dict[str, Any], keys: list[str], depth: int) -> int:
        """Read ``"name" :`` and return where its value starts."""
        if self.text[i : i + 1] != '"':
            self.fail(_syntax("Expecting property name enclosed in double quotes"), i)
        name, end = self.string(i)
        self.count += 1
        if self.count > MAX_NODES:
            self.fail(TOO_MANY, i)
        if name in mapping:
            self.fail(f"duplicate key {name!r}", i)
        # The value is not stored yet: a placeholder makes a repeated key a duplicate.
        mapping[name] = None
        keys.append(name)
        if depth == 1:
            self.top_keys[name] = self.position(i)
        i = self.skip(end)
        if self.text[i : i + 1] != ":":
            self.fail(_syntax("Expecting ':' delimiter"), i)
        return self.skip(i + 1)

    def position(self, index: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, index) + 1
        return line, index - (self.text.rfind("\n", 0, index) + 1) + 1

    def string(self, i: int) -> tuple[str, int]:
        try:
            value, end = _scanstring(self.text, i + 1, True)
        except json.JSONDecodeError as exc:
            self.fail(_syntax(exc.msg.removesuffix(" at").removesuffix(" starting")), exc.pos)
        problem = text_problem(value)
        if problem is not None:
            self.fail(problem, i)
        return value, end

    def scalar(self, i: int) -> tuple[Any, int]:
        text = self.text
        if text[i : i + 1] == '"':
            return self.string(i)
        for word, literal in _LITERALS:
            if text.startswith(word, i):
                return literal, i + len(word)
        if text.startswith(_NOT_JSON_NUMBERS, i):
            self.fail(NOT_FINITE, i)
        number = _NUMBER.match(text, i)
        if number is None:
            self.fail(_syntax("Expecting value"), i)
        written = number.group()
        if number.group(1) is None and number.group(2) is None:
            if len(written) > 20 or not INT64_MIN <= int(written) <= INT64_MAX:
                self.fail(INT_RANGE, i)
            return int(written), number.end()
        value = float(written)
        if not math.isfinite(value):
            self.fail(f"{NOT_FINITE}: {written} is beyond the 64-bit float range", i)
        return value, number.end()


def load_json(text: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    """One JSON value (RFC 8259), under the same limits as YAML, and where each
    top-level key was written; raises :class:`YamlProblem` with a position."""
    reader = _JsonReader(text)
    return reader.read(), reader.top_keys
