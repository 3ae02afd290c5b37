"""Names and arguments for Redis: a subject's hash tag and keys, a group's key, a
tracked value as a script argument, a key shown in a log line."""

from __future__ import annotations

import json
from typing import Any

from zerotrust.behavior.features import subject_of, tracked_text
from zerotrust.request import AccessRequest

__all__ = ["arg", "group_key", "resource_arg", "shown", "tag", "text_bytes"]


def tag(request: AccessRequest) -> bytes:
    """The subject's hash tag ``<type>:<id>``, each part percent-escaped (``%``, ``:``,
    ``{``, ``}``): one ``:`` splits the parts, so two subjects never share a tag (the
    type ``user:alice`` with id ``x`` is not the type ``user`` with id ``alice:x``),
    and no brace lets Cluster hash anything else. Any str encodes (a lone surrogate
    too, injectively), so no subject can fail here."""
    kind, ident = subject_of(request)
    return text_bytes(f"{_escaped(kind)}:{_escaped(ident)}")


def group_key(prefix: bytes, text: str) -> bytes:
    """A group's table: ``<prefix>:g:{<text>}``, the text escaped like a subject tag so
    it is its own hash tag (its own Cluster slot)."""
    return prefix + b":g:{" + text_bytes(_escaped(text)) + b"}"


def _escaped(text: str) -> str:
    return text.replace("%", "%25").replace(":", "%3A").replace("{", "%7B").replace("}", "%7D")


def text_bytes(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def arg(value: Any, field: str) -> bytes:
    """A tracked value as a script argument: ``b""`` is "absent", and the empty string
    is ``b"\xff"``, which no str encodes to (so it is neither absent nor ``'""'``)."""
    text = tracked_text(value, field)
    if text is None:
        return b""
    return text_bytes(text) or b"\xff"


def shown(tag: bytes) -> str:
    """A subject's tag for a log line: printable and bounded."""
    return repr(tag[:80].decode("utf-8", "backslashreplace"))


def resource_arg(kind: Any, ident: Any) -> bytes:
    """The resource ``[type, id]`` as :func:`arg` gives it; two strings (what a
    validated request holds) are written out here, ``json.dumps`` with sorted keys
    and compact separators costing a new encoder per call (~3 µs)."""
    if type(kind) is str and type(ident) is str:
        dump = json.encoder.encode_basestring_ascii
        return text_bytes(f"[{dump(kind)},{dump(ident)}]")
    return arg([kind, ident], "resource")
