"""How error messages name the kind of a value."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["describe"]


def describe(value: Any, *, mapping: str = "an object", sequence: str = "an array") -> str:
    """``"a string"``, ``"null"``...; JSON words by default, YAML words when asked."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return sequence
    if isinstance(value, Mapping):
        return mapping
    return f"a Python {type(value).__name__}"
