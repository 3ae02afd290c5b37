"""JSON Schemas (draft 2020-12) of policy, data, test-suite and attribute schema files,
for editors.

They describe the structure the loader accepts, so an editor flags a misspelt key or a
wrong type as it is typed. They cannot see CEL, duplicate names or undeclared obligation
types: ``zerotrust validate`` remains the authority, and what a schema refuses, the
loader refuses too.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

from zerotrust.errors import ZeroTrustError

__all__ = ["KINDS", "UnknownSchemaError", "schema", "schema_text"]

#: Every schema shipped: ``schema`` describes attribute schema files (``*.schema.yaml``).
KINDS = ("policy", "data", "test", "schema")


class UnknownSchemaError(ZeroTrustError, LookupError):
    """Raised when a schema is asked for a kind other than those of :data:`KINDS`."""


def schema_text(kind: str) -> str:
    """The schema of ``kind`` as shipped (JSON text), for printing unchanged."""
    if kind not in KINDS:
        raise UnknownSchemaError(f"no schema for {kind!r} (known: {', '.join(KINDS)})")
    return resources.files(__name__).joinpath(f"{kind}.schema.json").read_text(encoding="utf-8")


def schema(kind: str) -> dict[str, Any]:
    """The schema of ``kind`` (one of :data:`KINDS`) as a fresh dict."""
    loaded: dict[str, Any] = json.loads(schema_text(kind))
    return loaded
