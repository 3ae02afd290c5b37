"""Positions inside a CEL string mapped back to the YAML file it was written in."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, TypeVar

from zerotrust.errors import Diagnostic
from zerotrust.policy.model import CelSource

__all__ = ["Declared", "file_position", "first_declared", "offset_position", "text_offset"]


def offset_position(text: str, offset: int) -> tuple[int, int]:
    """The 1-based line and column of character ``offset`` of ``text``."""
    offset = min(max(offset, 0), len(text))
    return text.count("\n", 0, offset) + 1, offset - text.rfind("\n", 0, offset)


def text_offset(text: str, line: int, column: int) -> int:
    """The offset of 1-based ``line`` and ``column`` in ``text`` (clamped to it)."""
    parts = text.split("\n")
    line = min(max(line, 1), len(parts))
    offset = sum(len(p) + 1 for p in parts[: line - 1]) + max(column, 1) - 1
    return min(offset, len(text))


def file_position(source: CelSource, line: int, column: int) -> tuple[int, int]:
    """Map a 1-based position inside a CEL string to its position in the YAML file."""
    parts = source.text.split("\n")
    line = min(max(line, 1), len(parts))
    offset = sum(len(p) + 1 for p in parts[: line - 1]) + max(column, 1) - 1
    index = _raw_index(source, min(offset, len(source.text)))
    if index is None:
        return source.line, source.column
    before = source.raw[:index] if source.raw else ""
    newlines = before.count("\n")
    if not newlines:
        return source.line, source.column + index
    return source.line + newlines, index - before.rfind("\n")


def _raw_index(source: CelSource, offset: int) -> int | None:
    """Where character ``offset`` of the value was written in the raw scalar.

    Walks value and raw text together, skipping what YAML removed (quotes, escape
    backslashes, indentation, folded line breaks); None if they cannot be aligned.
    """
    raw, value = source.raw, source.text
    if raw is None:
        return None
    j = 0
    if source.style in ("|", ">"):
        j = raw.find("\n") + 1  # skip the header line: indicator, chomping, comment
    elif source.style in ("'", '"'):
        j = 1
    quoted = source.style == '"'
    for i, char in enumerate(value):
        width = 1
        while j < len(raw) and raw[j] != char:
            width = _escape(raw, j, char) if quoted else 0
            if width:
                break
            j += 1
        width = width or 1
        if j >= len(raw):
            return None
        if i == offset:
            return j
        j += width
    return j if offset >= len(value) else None


#: YAML's double-quoted escapes of one character after the backslash.
_ESCAPES = {
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "t": "\t",
    "\t": "\t",
    "n": "\n",
    "v": "\v",
    "f": "\f",
    "r": "\r",
    "e": "\x1b",
    " ": " ",
    "/": "/",
    "N": "\x85",
    "_": "\xa0",
    "L": "\u2028",
    "P": "\u2029",
}
_HEX = {"x": 2, "u": 4, "U": 8}


def _escape(raw: str, j: int, char: str) -> int:
    """How many raw characters at ``j`` spell ``char`` as a double-quoted escape (0: none)."""
    if raw[j] != "\\" or j + 1 >= len(raw):
        return 0
    kind = raw[j + 1]
    if _ESCAPES.get(kind) == char:
        return 2
    digits = _HEX.get(kind)
    if digits is not None and raw[j + 2 : j + 2 + digits] and len(char) == 1:
        try:
            if chr(int(raw[j + 2 : j + 2 + digits], 16)) == char:
                return 2 + digits
        except ValueError:
            return 0
    return 0


class Declared(Protocol):
    """Something declared by name, at a place in a file."""

    @property
    def name(self) -> str: ...
    @property
    def file(self) -> str: ...
    @property
    def line(self) -> int: ...
    @property
    def column(self) -> int: ...


_D = TypeVar("_D", bound=Declared)


def first_declared(items: Iterable[_D], what: str) -> tuple[dict[str, _D], list[Diagnostic]]:
    """Each name's first declaration; a second one is refused at its place, naming the
    first (``what`` says what is declared: ``"action group"``, ``"library"``)."""
    declared: dict[str, _D] = {}
    problems: list[Diagnostic] = []
    for item in items:
        first = declared.get(item.name)
        if first is None:
            declared[item.name] = item
            continue
        problems.append(
            Diagnostic(
                item.file,
                item.line,
                item.column,
                f"{what} {item.name!r} is defined twice "
                f"(first in {first.file}:{first.line}:{first.column})",
            )
        )
    return declared, problems
