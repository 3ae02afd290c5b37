"""I-JSON (RFC 7493) decoding, shared by the AuthZEN server and client.

AuthZEN 1.0 (section 10.1.1) asks for I-JSON: UTF-8, no duplicate member names (which
value would count?), no NaN or Infinity. Python's ``json`` accepts all three.
"""

from __future__ import annotations

import json
from typing import Any

__all__ = ["loads"]


def loads(raw: bytes) -> Any:
    """The JSON value in ``raw``. Raises ``UnicodeDecodeError`` (not UTF-8),
    ``RecursionError`` (nested too deeply) or ``ValueError`` (malformed, a duplicate
    key, ``NaN`` / ``Infinity``, an integer too long to read)."""
    return json.loads(raw.decode("utf-8"), object_pairs_hook=_unique, parse_constant=_no_constant)


def _unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(token: str) -> Any:
    raise ValueError(f"{token} is not a JSON number")
