"""Policy and data text to plain values that remember where each came from.

Policy diagnostics must say file, line and column, so we build located values from
libyaml's event stream (safe tags only) instead of using ``safe_load``; JSON data has a
reader of its own (:mod:`zerotrust.policy.json_data`). Both readers are loops over an
explicit stack: no input can recurse in C (libyaml's composer does, and a few tens of
thousands of ``[`` crash the process) or in Python. YAML and JSON obey one set of
limits, checked where the value is written:

* at most ``MAX_NODES`` values per file, nested at most ``MAX_DEPTH`` levels; values an
  alias repeats count as if written out, and what aliases add to one load is bounded
  (``MAX_ALIAS_VALUES``, ``MAX_ALIAS_CHARS``), so a small file cannot expand into a
  large one;
* integers within 64 bits (CEL's ``int``), floats finite;
* no duplicate keys, keys are strings;
* strings are text: no control character other than tab and line breaks, no lone
  surrogate (``"\\ud800"`` cannot be written as UTF-8, so it could not be logged,
  stored or compared reliably).
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

import yaml
from yaml import events

from zerotrust.policy.yaml_hints import yaml_hint
from zerotrust.policy.yaml_versions import disagreement
from zerotrust.request import INT64_MAX, INT64_MIN

__all__ = ["AliasBudget", "LNode", "YamlProblem", "load_documents", "position", "text_problem"]

MAX_NODES = 200_000
MAX_DEPTH = 64
#: What aliases may add to one load, beyond the text as written: values and characters
#: (of the repeated text). Without a bound, ``big: &a "...100 KB..."`` repeated by 10,000
#: aliases is a 170 KB file that expands to a gigabyte.
MAX_ALIAS_VALUES = MAX_NODES
MAX_ALIAS_CHARS = 10 * 1024 * 1024

TOO_MANY = f"file has more than {MAX_NODES} values"
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"
INT_RANGE = "integer outside the 64-bit range"
NOT_FINITE = "NaN and infinity are not allowed"

_STD = "tag:yaml.org,2002:"
_STR = _STD + "str"
# libyaml parses (an iterative state machine in C); the event loop below composes.
_PARSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_COLLECTION_TAGS = frozenset({_STD + "seq", _STD + "map"})
# What YAML refuses in a file, plus lone surrogates: refused in every string value,
# however it was written (YAML "\x00" / "\ud800" escapes, JSON "\u0000" escapes).
_SURROGATE = re.compile("[\ud800-\udfff]")
_NOT_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
# No 64-bit integer needs more characters than this in any YAML notation (0b + 64
# digits); longer ones are refused before int() runs (CPython refuses > 4,300 decimal
# digits with a ValueError, and without that limit the conversion is quadratic).
_MAX_INT_CHARS = 100
# libyaml's context for a quote never closed, and what we say instead.
_UNCLOSED = {
    "while scanning a quoted scalar": "this quoted value is never closed",
}


class YamlProblem(Exception):
    """Internal: a YAML or JSON file that cannot be read; carries a position (1-based)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.line = line
        self.column = column


class LNode:
    """A YAML value with its position. ``value`` holds plain data for scalars (``None``
    for an empty document), ``dict[str, LNode]`` for mappings (with ``keys`` positions)
    and ``list[LNode]``. A value an alias repeats is the same object as its anchor's."""

    __slots__ = ("column", "keys", "line", "raw", "style", "value")

    def __init__(
        self,
        value: Any,
        line: int,
        column: int,
        style: str | None = None,
        keys: dict[str, LNode] | None = None,
        raw: str | None = None,
    ) -> None:
        self.value = value
        self.line = line
        self.column = column
        self.style = style
        self.keys = keys
        #: A scalar's text exactly as written (quotes, escapes, indentation, line breaks),
        #: so positions inside its value can be mapped back to the file.
        self.raw = raw

    def __repr__(self) -> str:
        # Messages may show a value; they must show the policy's, not our objects.
        return repr(self.plain())

    def plain(self) -> Any:
        """The value without positions (JSON-shaped; YAML timestamps become ISO strings)."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value


class AliasBudget:
    """What aliases have added so far to one load (values, characters); see
    ``MAX_ALIAS_VALUES`` and ``MAX_ALIAS_CHARS``. One per load, shared by its files."""

    __slots__ = ("chars", "values")

    def __init__(self) -> None:
        self.values = 0
        self.chars = 0


def text_problem(value: str) -> str | None:
    """Why ``value`` is not acceptable text, or None."""
    found = _NOT_TEXT.search(value)
    if found is None:
        return None
    char = ord(found.group())
    what = "a lone surrogate" if 0xD800 <= char <= 0xDFFF else "a control character"
    return f"strings must be text: U+{char:04X} is {what}"


def load_documents(
    text: str, budget: AliasBudget | None = None, *, problems: list[YamlProblem] | None = None
) -> list[LNode]:
    """Every YAML document in ``text``, in order; an empty document (nothing, ``~``,
    ``null``) is an LNode whose value is None. Raises :class:`YamlProblem`.

    With ``problems``, a value that is not acceptable on its own (NaN, a control
    character, an integer out of range...) is appended there and read as null, so the
    reader can go on and report every other problem too; the file's structure must
    still be sound (and keys stay strict: a key read as null would mislead).
    """
    surrogate = _SURROGATE.search(text)
    if surrogate is not None:  # libyaml reads UTF-8: it would fail to encode the text
        line, column = position(text, surrogate.start())
        raise YamlProblem(text_problem(surrogate.group()) or "", line, column)
    try:
        return _Composer(text, budget or AliasBudget(), problems).documents()
    except YamlProblem as exc:  # ours, from composing: an alias or a tag may want a hint
        hinted = _with_hint(exc, text)
        if hinted is exc:
            raise
        raise hinted from exc
    except yaml.reader.ReaderError as exc:
        line, column = position(text, exc.position)
        raise YamlProblem(f"invalid YAML: {_reader_problem(exc)}", line, column) from exc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context_mark is not None and exc.context in _UNCLOSED:
            # libyaml points at the end of the file; the slip is where the quote opened.
            mark, problem = exc.context_mark, _UNCLOSED[exc.context]
        line = mark.line + 1 if mark else 1
        column = mark.column + 1 if mark else 1
        if "maximum nesting depth" in problem:
            # libyaml 0.2.6 (bundled from PyYAML 6.0.4) refuses nesting past 1,000 levels
            # while scanning ahead, before our own limit sees the events: the same fault.
            raise YamlProblem(TOO_DEEP, line, column) from exc
        hint = yaml_hint(problem, text, line, column)
        raise YamlProblem(f"invalid YAML: {problem}{hint}", line, column) from exc
    except yaml.YAMLError as exc:
        raise YamlProblem(f"invalid YAML: {exc}", 1, 1) from exc


def _with_hint(exc: YamlProblem, text: str) -> YamlProblem:
    problem = exc.message.partition(": ")[2]
    hint = yaml_hint(problem, text, exc.line, exc.column) if problem else ""
    return YamlProblem(exc.message + hint, exc.line, exc.column) if hint else exc


def position(text: str, index: int) -> tuple[int, int]:
    """1-based line and column of ``text[index]``."""
    return text.count("\n", 0, index) + 1, index - (text.rfind("\n", 0, index) + 1) + 1


def _reader_problem(exc: yaml.reader.ReaderError) -> str:
    if isinstance(exc.character, int):
        return f"unacceptable character #x{exc.character:04x}: {exc.reason}"
    return str(exc.reason)


def _at(mark: Any) -> tuple[int, int]:
    return mark.line + 1, mark.column + 1


class _Open:
    """A collection being read: its items, the key awaiting a value (mappings), and
    the size of what it holds so far (values, characters, levels below it)."""

    __slots__ = ("anchor", "chars", "height", "items", "key", "keys", "node", "values")

    def __init__(self, node: LNode, anchor: str | None) -> None:
        self.node = node
        self.items: list[LNode] | dict[str, LNode] = node.value
        self.keys: dict[str, LNode] = node.keys if node.keys is not None else {}
        self.anchor = anchor
        self.key: LNode | None = None
        self.values = 1
        self.chars = 0
        self.height = 0


class _Composer:
    """Located values from libyaml's events, in one pass over an explicit stack.

    Every value's size is known when it is complete, so an alias is checked in O(1):
    it counts as the values and characters it repeats, and its nesting as its anchor's
    depth below the alias.
    """

    def __init__(
        self, text: str, budget: AliasBudget, problems: list[YamlProblem] | None = None
    ) -> None:
        self.text = text
        self.budget = budget
        self.problems = problems
        self.values = 0
        self.constructor = yaml.SafeLoader("")
        # anchor -> (node, values, characters, levels below it); None while still open.
        self.anchors: dict[str, tuple[LNode, int, int, int] | None] = {}
        self.stack: list[_Open] = []
        self.root: LNode | None = None

    def documents(self) -> list[LNode]:
        parser = _PARSER(self.text)
        out: list[LNode] = []
        started = (1, 1)
        try:
            while True:
                event = parser.get_event()
                kind = type(event)
                if kind is events.ScalarEvent:
                    self.scalar(event, parser)
                elif kind is events.SequenceStartEvent or kind is events.MappingStartEvent:
                    self.start(event, parser, kind is events.SequenceStartEvent)
                elif kind is events.SequenceEndEvent or kind is events.MappingEndEvent:
                    self.end()
                elif kind is events.AliasEvent:
                    self.alias(event)
                elif kind is events.DocumentStartEvent:
                    self.anchors, self.root, started = {}, None, _at(event.start_mark)
                elif kind is events.DocumentEndEvent:
                    root = self.root
                    # An empty document is where it starts (its `---`), not where its
                    # implied null is (the next line).
                    out.append(root if root and root.value is not None else LNode(None, *started))
                elif kind is events.StreamEndEvent:
                    return out
        finally:
            parser.dispose()

    def count(self, values: int, mark: Any) -> None:
        self.values += values
        if self.values > MAX_NODES:
            raise YamlProblem(f"{TOO_MANY} (alias bomb?)", *_at(mark))

    def scalar(self, event: Any, parser: Any) -> None:
        self.count(1, event.start_mark)
        line, column = _at(event.start_mark)
        if len(self.stack) > MAX_DEPTH:
            raise YamlProblem(TOO_DEEP, line, column)
        tag, text = event.tag, event.value
        # Only a plain scalar without a tag is resolved by YAML's schema (1.1 here); the
        # non-specific tag "!" makes a scalar text (YAML 1.1 and 1.2 alike, not PyYAML).
        resolved = tag is None and event.style in _PLAIN
        if tag == "!":
            tag = _STR
        elif tag is None:
            tag = parser.resolve(yaml.ScalarNode, text, event.implicit)
        start, end = event.start_mark.index, event.end_mark.index
        if tag == _STD + "merge":
            raise YamlProblem("YAML merge keys (<<) are not supported", line, column)
        if tag == _STD + "value":
            raise YamlProblem(f"{text!r} is a YAML 1.1 value key: quote it for text", line, column)
        try:
            value = self.value(tag, text, event, resolved, (line, column))
        except YamlProblem as exc:
            parent = self.stack[-1] if self.stack else None
            is_key = parent is not None and isinstance(parent.items, dict) and parent.key is None
            if self.problems is None or is_key:
                raise
            self.problems.append(_with_hint(exc, self.text))
            value = None
        raw = self.text[start:end] if isinstance(value, str) else None
        node = LNode(value, line, column, style=event.style, raw=raw)
        if event.anchor is not None:
            self.anchor(event.anchor, (node, 1, end - start, 0), event.start_mark)
        self.add(node, 1, end - start, 0, (line, column))

    def value(self, tag: str, text: str, event: Any, resolved: bool, at: tuple[int, int]) -> Any:
        """A scalar's value, or :class:`YamlProblem` when it is not acceptable."""
        if tag == _STR or (resolved and tag == _STD + "timestamp"):
            # A plain timestamp stays the text written, as YAML 1.2 reads it (1.1 would
            # make it a datetime, rewritten): "2026-01-01T10:00:00Z" for timestamp().
            value: Any = _text(text, *at)
        else:
            written = yaml.ScalarNode(tag, text, event.start_mark, event.end_mark)
            value = _scalar(written, self.constructor, *at)
        explicit = tag.removeprefix(_STD) if not resolved and tag in _CHECKED_TAGS else None
        if resolved or explicit is not None:
            problem = disagreement(text, value, tag=explicit)
            if problem is not None:
                raise YamlProblem(problem, *at)
        return value

    def start(self, event: Any, parser: Any, sequence: bool) -> None:
        self.count(1, event.start_mark)
        line, column = _at(event.start_mark)
        if len(self.stack) > MAX_DEPTH:
            raise YamlProblem(TOO_DEEP, line, column)
        tag = event.tag
        if tag is None or tag == "!":
            kind = yaml.SequenceNode if sequence else yaml.MappingNode
            tag = parser.resolve(kind, None, event.implicit)
        if tag not in _COLLECTION_TAGS:
            raise YamlProblem(f"unsupported YAML tag {tag!r}", line, column)
        if (tag == _STD + "seq") != sequence:
            what = "a list" if sequence else "a mapping"
            raise YamlProblem(f"YAML tag {tag!r} does not fit {what}", line, column)
        if event.anchor is not None:
            self.anchor(event.anchor, None, event.start_mark)
        node = LNode([], line, column) if sequence else LNode({}, line, column, keys={})
        self.stack.append(_Open(node, event.anchor))

    def end(self) -> None:
        done = self.stack.pop()
        size = (done.node, done.values, done.chars, done.height)
        if done.anchor is not None:
            self.anchors[done.anchor] = size
        self.add(*size, (done.node.line, done.node.column))

    def anchor(self, name: str, size: tuple[LNode, int, int, int] | None, mark: Any) -> None:
        if name in self.anchors:
            raise YamlProblem(f"invalid YAML: anchor &{name} is defined twice", *_at(mark))
        self.anchors[name] = size

    def alias(self, event: Any) -> None:
        line, column = _at(event.start_mark)
        if event.anchor not in self.anchors:
            raise YamlProblem(f"invalid YAML: alias *{event.anchor} has no anchor", line, column)
        found = self.anchors[event.anchor]
        if found is None:
            message = f"invalid YAML: alias *{event.anchor} is inside the value it repeats"
            raise YamlProblem(message, line, column)
        node, values, chars, height = found
        self.count(values, event.start_mark)
        if len(self.stack) + height > MAX_DEPTH:
            raise YamlProblem(TOO_DEEP, line, column)
        self.budget.values += values
        self.budget.chars += chars
        if self.budget.values > MAX_ALIAS_VALUES:
            what = f"{MAX_ALIAS_VALUES} values"
        elif self.budget.chars > MAX_ALIAS_CHARS:
            what = f"{MAX_ALIAS_CHARS} characters"
        else:
            self.add(node, values, chars, height, (line, column))
            return
        message = f"aliases in this policy set repeat more than {what} (alias bomb?)"
        raise YamlProblem(message, line, column)

    def add(self, node: LNode, values: int, chars: int, height: int, at: tuple[int, int]) -> None:
        """Attach a complete value, written at ``at``, to the collection it is in (or
        make it the root)."""
        if not self.stack:
            self.root = node
            return
        parent = self.stack[-1]
        parent.values += values
        parent.chars += chars
        parent.height = max(parent.height, height + 1)
        items = parent.items
        if isinstance(items, list):
            items.append(node)
        elif parent.key is None:
            if not isinstance(node.value, str):
                shown = _short(repr(node))
                kind = _yaml_kind(node.value)
                raise YamlProblem(f"keys must be strings, found {kind} {shown}", *at)
            if node.value in items:
                raise YamlProblem(f"duplicate key {node.value!r}", *at)
            parent.key = node
        else:
            items[parent.key.value] = node
            parent.keys[parent.key.value] = parent.key
            parent.key = None


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _yaml_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def _text(value: str, line: int, column: int) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise YamlProblem(problem, line, column)
    return value


_PLAIN = (None, "")  # a plain scalar's style: None from PyYAML's parser, "" from libyaml's
# Explicit tags whose values YAML 1.1 and 1.2 may read differently (``!!int 010``).
_CHECKED_TAGS = frozenset(_STD + name for name in ("int", "float", "bool", "null"))


def _scalar(node: yaml.ScalarNode, constructor: Any, line: int, column: int) -> Any:
    if node.tag == _STD + "int" and len(node.value) > _MAX_INT_CHARS:
        raise YamlProblem(INT_RANGE, line, column)
    try:
        value = constructor.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        raise YamlProblem(f"invalid YAML value: {exc.problem}", line, column) from exc
    except (yaml.YAMLError, ValueError, LookupError, TypeError, ArithmeticError) as exc:
        raise YamlProblem(f"invalid YAML value: {exc}", line, column) from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise YamlProblem(NOT_FINITE, line, column)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        raise YamlProblem("binary values are not allowed", line, column)
    if isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise YamlProblem(INT_RANGE, line, column)
    if isinstance(value, str):
        return _text(value, line, column)
    return value
