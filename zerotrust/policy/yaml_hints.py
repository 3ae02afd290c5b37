"""A hint after a YAML syntax error: what the author probably wrote, and how to write it.

libyaml's messages (``mapping values are not allowed in this context``) describe the
parser's state, not the slip. The usual slips in policy files are few: a CEL expression
holding ``: `` or starting with a quote, a bracket or ``!``, an indentation that does not
line up, a tab, an unclosed quote, a backslash inside double quotes. Each is recognised
from the problem and the line it points at; anything else gets no hint rather than a
wrong one.
"""

from __future__ import annotations

__all__ = ["yaml_hint"]

_BLOCK = "write it as a block scalar ({key}: | on its own line, the text indented below)"
_INDENT = (
    "check the indentation: the keys of one mapping, and the '-' of one list, "
    "must start in the same column"
)
_TABS = "YAML indents with spaces only: replace the tab with spaces"
# Characters that cannot start a plain value: each has a meaning in YAML.
_RESERVED = {"@": "reserved", "`": "reserved", "%": "a directive", "|": "a block scalar"}


def yaml_hint(problem: str, text: str, line: int, column: int) -> str:
    """The hint for libyaml's ``problem`` at 1-based ``line``/``column`` of ``text``,
    as ``"; hint: ..."`` to append to the message, or ``""`` when none applies."""
    lines = text.splitlines()
    source = lines[line - 1] if 0 < line <= len(lines) else ""
    at = source[column - 1 : column]
    key, value = _key_value(source)
    hint = ""
    if "tab" in problem or at == "\t":
        hint = _TABS
    elif problem == "mapping values are not allowed in this context":
        if value is not None and ": " in value + " ":
            hint = f"a value cannot contain ': ' unquoted; {_quote_it(key, value)}"
        else:
            hint = "this line reads as part of the value above it; " + _INDENT
    elif problem == "found character that cannot start any token" and at in _RESERVED:
        what = _RESERVED[at]
        hint = f"{at!r} is {what} in YAML and cannot start a value; {_quote_it(key, value)}"
    elif problem.startswith("could not determine a constructor for the tag") and value:
        hint = f"'!' starts a YAML tag; {_quote_it(key, value)}"
    elif problem.startswith("alias ") and value and value.startswith("*"):
        hint = f"'*' starts a YAML alias; if you meant text, {_quote_it(key, value)}"
    elif problem == "found unknown escape character":
        hint = (
            'inside double quotes a backslash starts an escape (\\n, \\"); write a '
            "backslash as \\\\, or use single quotes, in which backslashes are plain"
        )
    elif (
        problem in ("did not find expected key", "could not find expected ':'")
        and value
        and value[0] in "\"'[{"
    ):
        closes = "quote" if value[0] in "\"'" else "bracket"
        hint = (
            f"a value that starts with {value[0]!r} ends where that {closes} closes, so "
            f"what follows is out of place; {_quote_it(key, value)}"
        )
    if not hint and problem in (
        "did not find expected key",
        "did not find expected '-' indicator",
        "could not find expected ':'",
    ):
        hint = _INDENT
        if problem == "could not find expected ':'":
            hint += ", and every key needs a ':' after it"
    return f"; hint: {hint}" if hint else ""


def _quote_it(key: str, value: str | None) -> str:
    """How to write the value whole: in the quotes it does not hold, else as a block."""
    block = _BLOCK.format(key=key)
    text = value or ""
    if "'" not in text:
        return f"quote the whole value ({key}: '...'), or {block}"
    if '"' not in text and "\\" not in text:
        return f'quote the whole value ({key}: "..."), or {block}'
    return block


def _key_value(source: str) -> tuple[str, str | None]:
    """``("when", "a: b")`` for ``    when: a: b`` (a list item's dash skipped), or
    ``("key", None)`` when the line holds no ``key: value``."""
    stripped = source.strip()
    if stripped.startswith("- "):
        stripped = stripped[2:].lstrip()
    name, sep, rest = stripped.partition(": ")
    if not sep or not name or name[0] in "\"'[{":
        return "key", None
    return name, rest.strip() or None
