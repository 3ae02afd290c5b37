"""How messages show values: the kind of a value, a quoted value, and hiding it again.

Every message that quotes a caller's value (a CEL runtime error, say) goes through
:func:`quote`, and the decision log hides a redacted value in every form
:func:`quote` can give it (:func:`hider`): one function on each side, so no form
slips through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

__all__ = [
    "QUOTED_PREFIX",
    "QUOTED_WHOLE",
    "describe",
    "escape",
    "hider",
    "printable",
    "quote",
]

#: Strings up to this many characters are quoted whole...
QUOTED_WHOLE = 64
#: ...longer ones as their first this many characters and their length.
QUOTED_PREFIX = 48

# A cut-short quote as quote() writes it: the escaped prefix, then its full length.
_CUT = re.compile(r"'((?:[^'\\]|\\.)*)'\.\.\. \(\d+ characters\)")


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


def quote(value: Any) -> str:
    """A value as a message shows it: a string as ``'text'`` (:func:`escape`), cut to
    its first ``QUOTED_PREFIX`` characters and its length when longer than
    ``QUOTED_WHOLE`` (``'abc…'... (87 characters)``); anything else as ``repr``.

    A ``str`` subclass is read as its data (its own ``__repr__`` is never called).
    """
    if not isinstance(value, str):
        return repr(value)
    text = str.__str__(value)
    if len(text) <= QUOTED_WHOLE:
        return f"'{escape(text)}'"
    return f"'{escape(text[:QUOTED_PREFIX])}'... ({len(text)} characters)"


def printable(text: str) -> str:
    """``text`` on one line, safe for a terminal: a control character, line break,
    bidirectional control or lone surrogate (a file name or key may hold any) is shown
    escaped (``\\x1b``, ``\\u202e``); the rest is left as it is."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def escape(text: str) -> str:
    """``text`` with ``\\``, ``'`` and every non-printable character escaped
    (``\\n``, ``\\x00``, ``\\u200b``, a lone surrogate as ``\\ud800``).

    Character by character, so the escaped form of a part is a part of the escaped
    whole: that is what lets :func:`hide` find a value inside a longer quote. The
    result is printable and valid Unicode (it can always be logged).
    """
    if text.isprintable() and "\\" not in text and "'" not in text:
        return text
    return "".join(map(_escape_char, text))


def _escape_char(char: str) -> str:
    if char in "\\'":
        return "\\" + char
    if char.isprintable():
        return char
    if char in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[char]
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


_SHORT_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def hider(secrets: Iterable[str | int | float], mask: str) -> Callable[[str], str]:
    """A function that replaces, in a text, every form :func:`quote` can give each
    secret by ``mask``; made once per set of secrets, used on many texts.

    The forms of a string: itself, escaped by :func:`escape`, as Python's ``repr`` writes it
    (messages from libraries), its first ``QUOTED_PREFIX`` characters escaped (its
    quote cut short), at the end of any quote cut short the part of a secret the cut
    left visible (a longer string holding the secret near its start), and
    percent-encoded in any mix (a URL path holding it). A number is hidden where its
    ``repr`` stands as a whole number, not inside a longer one.
    Longer forms are replaced first, so a secret inside another is hidden whole.
    """
    values = list(secrets)
    texts = [s for s in values if type(s) is str and s]
    numbers = {repr(n) for n in values if type(n) is int or type(n) is float}
    forms = _forms(texts)
    number = (
        re.compile(
            r"(?<![\w.])(?:"
            + "|".join(map(re.escape, sorted(numbers, key=len, reverse=True)))
            + r")(?![\w.])"
        )
        if numbers
        else None
    )

    encoded: list[re.Pattern[str]] = []  # built on the first text holding a "%"

    def hide(text: str) -> str:
        if texts and "characters)" in text:  # first: it reads the lengths numbers may hide
            text = _CUT.sub(lambda m: _hide_cut(m, texts, mask), text)
        for form in forms:
            if form in text:
                text = text.replace(form, mask)
        if texts and "%" in text:
            if not encoded:
                encoded.extend(map(_percent_encoded, texts))
            for pattern in encoded:
                text = pattern.sub(mask, text)
        if number is not None:
            text = number.sub(mask, text)
        return text

    return hide


def _percent_encoded(secret: str) -> re.Pattern[str]:
    """``secret`` in a URL, each character as itself or percent-encoded (UTF-8, hex in
    either case, ``+`` for a space): however a client chose to encode it."""
    parts = []
    for char in secret:
        raw = "".join(f"%{_HEX[b >> 4]}{_HEX[b & 15]}" for b in char.encode("utf-8", "replace"))
        plus = r"|\+" if char == " " else ""
        parts.append(f"(?:{re.escape(char)}|{raw}{plus})")
    return re.compile("".join(parts))


_HEX = [f"[{d}{d.upper()}]" if d.isalpha() else d for d in "0123456789abcdef"]


def _forms(secrets: list[str]) -> list[str]:
    found: set[str] = set()
    for secret in secrets:
        found.add(secret)
        escaped = escape(secret)
        if escaped is not secret:  # else repr would not change it either
            found.add(escaped)
            found.add(repr(secret)[1:-1])
        if len(secret) > QUOTED_WHOLE:
            found.add(escape(secret[:QUOTED_PREFIX]))
    return sorted(found, key=len, reverse=True)


def _hide_cut(match: re.Match[str], secrets: list[str], mask: str) -> str:
    """A quote cut short whose visible end is the start of a secret, that end hidden."""
    shown = match.group(1)
    tail = 0  # how many characters at the end of `shown` to hide
    for secret in secrets:
        for size in range(min(len(secret), QUOTED_PREFIX), 0, -1):
            part = escape(secret[:size])
            if len(part) <= tail:
                break
            if shown.endswith(part):
                tail = len(part)
                break
    if not tail:
        return match.group(0)
    whole, start = match.group(0), match.start(1) - match.start(0)
    end = start + len(shown)
    return whole[: end - tail] + mask + whole[end:]
