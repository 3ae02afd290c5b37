"""One meaning for every scalar: refuse what YAML 1.1 and YAML 1.2 read differently.

PyYAML reads YAML 1.1; most editors, linters, CI tools and other languages' libraries
read YAML 1.2. For a plain scalar the two schemas disagree in ways that change a policy:
``NO`` is ``false`` to one and the country code to the other, ``010`` is 8 or 10,
``1:30`` is 90 or text, ``1e3`` is text or 1000. The loader compares what it read with
what the YAML 1.2 core schema (YAML 1.2.2 section 10.3.2) reads, and refuses a scalar on
which they differ, with what to write instead. Explicit standard tags (``!!int 010``)
are held to the same rule; the non-specific tag ``!`` makes a scalar text, as both
specifications say. A plain timestamp stays the text written, as YAML 1.2 reads it.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["disagreement"]

_NULLS = frozenset({"", "~", "null", "Null", "NULL"})
_BOOLEANS = {"true": True, "True": True, "TRUE": True, "false": False, "False": False}
_BOOLEANS["FALSE"] = False
_DECIMAL = re.compile(r"[-+]?[0-9]+")
_OCTAL = re.compile(r"0o[0-7]+")
_HEX = re.compile(r"0x[0-9a-fA-F]+")
_FLOAT = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?")
_INFINITY = re.compile(r"[-+]?\.(?:inf|Inf|INF)")
_NAN = re.compile(r"\.(?:nan|NaN|NAN)")
# Python refuses to convert more digits than this (and 64-bit numbers need far fewer).
_MAX_DIGITS = 100


class _Number:
    """A YAML 1.2 number too long to convert: it is certainly not what YAML 1.1 read."""


def yaml12(text: str) -> Any:
    """What the YAML 1.2 core schema reads a plain scalar as."""
    if text in _NULLS:
        return None
    if text in _BOOLEANS:
        return _BOOLEANS[text]
    if len(text) > _MAX_DIGITS and (_DECIMAL.fullmatch(text) or _FLOAT.fullmatch(text)):
        return _Number()
    if _DECIMAL.fullmatch(text):
        return int(text)
    if _OCTAL.fullmatch(text):
        return int(text[2:], 8)
    if _HEX.fullmatch(text):
        return int(text[2:], 16)
    if _FLOAT.fullmatch(text):
        return float(text)
    if _INFINITY.fullmatch(text):
        return -math.inf if text.startswith("-") else math.inf
    if _NAN.fullmatch(text):
        return math.nan
    return text


def _same(read: Any, core: Any) -> bool:
    if type(read) is not type(core):
        return False
    if isinstance(read, float) and math.isnan(read):
        return math.isnan(core)
    return bool(read == core)


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, _Number):
        return "a number"
    return repr(value)


def disagreement(text: str, read: Any, *, tag: str | None) -> str | None:
    """Why ``text`` (a plain scalar, or one with the explicit standard tag ``tag``) must be
    rewritten, given the value the loader ``read`` from it, or None when YAML 1.2 reads
    the same value."""
    core = yaml12(text)
    if tag == "float" and type(core) is int:
        core = float(core)  # !!float 1 is 1.0 in both
    if tag == "str":
        core = text
    if _same(read, core):
        return None
    if isinstance(read, str) and not isinstance(core, str):
        return (
            f"{text!r} is text in YAML 1.1 but a number in YAML 1.2: for the number write it "
            "in plain decimal or with a dot and a signed exponent (1.0e+3); for text, quote it"
        )
    if isinstance(read, bool) and isinstance(core, str):
        word = "true" if read else "false"
        return (
            f"{text!r} is {word} in YAML 1.1 but text in YAML 1.2: "
            f"write '{text}' (quoted) for the text, or {word}"
        )
    return (
        f"{text!r} is {_shown(read)} in YAML 1.1 but {_shown(core)} in YAML 1.2 "
        "(leading zero, sign, '_', ':' or 0b): write it in plain decimal, or quote it for text"
    )
