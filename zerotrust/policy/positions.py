"""Positions inside a CEL string mapped back to the YAML file it was written in."""

from __future__ import annotations

from zerotrust.policy.model import CelSource

__all__ = ["file_position", "offset_position", "text_offset"]


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
    for i, char in enumerate(value):
        while j < len(raw) and raw[j] != char:
            j += 1
        if j >= len(raw):
            return None
        if i == offset:
            return j
        j += 1
    return j if offset >= len(value) else None
