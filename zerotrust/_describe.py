"""How error messages name the kind of a value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe"]


def describe(value: Any, *, mapping: str = "an object", sequence: str = "an array") -> str:
    """``"a string"``, ``"null"``...; JSON words by default, YAML words when asked.

    Told by ``type()``: ``isinstance`` would believe an object that fakes ``__class__``.
    """
    kind = type(value)
    if value is None:
        return "null"
    if kind is bool:
        return "a boolean"
    if issubclass(kind, int | float):
        return "a number"
    if issubclass(kind, str):
        return "a string"
    if issubclass(kind, list | tuple):
        return sequence
    if issubclass(kind, Mapping):
        return mapping
    # A class name is a str and may be a subclass of it: read its data, not its methods.
    return f"a Python {str.__str__(kind.__name__)}"
