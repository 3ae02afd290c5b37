"""JSON data files (RFC 8259) read with positions, under the limits YAML obeys.

``json.loads`` reports duplicate keys, huge integers and infinities without a
position, accepts ``1e400`` as infinity, and recurses; this reader reports each
problem where it was written and keeps its own stack. The limits are those of
:mod:`zerotrust.policy.located`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from json import decoder
from typing import Any, NoReturn

from zerotrust.policy.located import (
    INT_RANGE,
    MAX_DEPTH,
    MAX_NODES,
    NOT_FINITE,
    TOO_DEEP,
    TOO_MANY,
    YamlProblem,
    position,
    text_problem,
)
from zerotrust.request import INT64_MAX, INT64_MIN

__all__ = ["load_json"]

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
        return position(self.text, index)

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
